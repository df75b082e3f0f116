"""An `nvidia-smi` shim over the simulated driver, so the agentless fallback is tested too.

It answers the forms factoryctl (and operators' scripts) use, from the same persisted node state as the agent:

    python -m factoryctl.sim.smi --node N [--state-dir D] [--factory F] --query-gpu=FIELDS --format=csv[,noheader][,nounits] [-i IDX]
    python -m factoryctl.sim.smi --node N ... -i IDX -pl WATTS      (out of range: refused, exit 2, nothing changed;
                                                                     not root on a node whose setters need it: exit 4)
    python -m factoryctl.sim.smi --node N ... -L [-i IDX]

`--node/--state-dir/--factory/--driver-version` may come from FACTORYCTL_SIM_NODE / _STATE_DIR / _FACTORY /
_DRIVER_VERSION instead, and `write_shim()` writes an executable `nvidia-smi` script with them baked in, to put first
on a PATH. Every value is read through `factoryctl.sim.nvml`, so an unsupported field prints `[N/A]` and a lost GPU
`[GPU is lost]`, as the real tool does. The driver version decides which property names exist, as it does for the
real tool: before R535 the clock event reasons are only `clocks_throttle_reasons.*`, and `clocks_event_reasons.*`
is not a valid field (so the fallback's handling of older drivers is tested too).

`--garbled` (or FACTORYCTL_SIM_SMI_GARBLED=1; `write_shim(garbled=True)`) makes it an nvidia-smi whose query output
cannot be read, with exit 0 all the same: each row cut after its first field, as from a tool of another version or a
site wrapper around it. So the fallback's handling of output it cannot read is tested against a real process too.

`--factoryctl-limits-lock` prints `factoryctl-limits-lock:PATH`, PATH the lock the node's simulated agents hold while
they change its limits (`factoryctl.sim.storage.limits_lock_path`): the fallback's change holds it too, so changes
through the agent and through nvidia-smi on one simulated node take turns. The real tool refuses the option, and the
fallback then holds a real node's lock (factoryctl.transport.smi).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from factoryctl.sim import nvml
from factoryctl.sim.storage import default_state_dir, limits_lock_path

_Getter = Callable[[Any], Any]


def _mib(value: int) -> str:
    return str(value // 2**20)


def _watts(milliwatts: int) -> str:
    return f"{milliwatts / 1000.0:.2f}"


def _bus_id(index: int) -> str:
    """The PCI bus id nvidia-smi names GPU `index` by (known without asking the GPU, so a lost one is named too)."""
    return "00000000:%02X:00.0" % (0x18 + 0x10 * index)


def _reason(bit: int) -> _Getter:
    """A reason's Active/Not Active, read by the call every driver has (R535 added the EventReasons name)."""
    return lambda h: "Active" if nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h) & bit else "Not Active"


# --query-gpu property -> (unit for headers and values, getter of the formatted value).
FIELDS: Dict[str, Tuple[str, _Getter]] = {
    "index": ("", lambda h: str(nvml.nvmlDeviceGetIndex(h))),
    "name": ("", nvml.nvmlDeviceGetName),
    "uuid": ("", nvml.nvmlDeviceGetUUID),
    "pci.bus_id": ("", lambda h: _bus_id(nvml.nvmlDeviceGetIndex(h))),
    "driver_version": ("", lambda h: nvml.nvmlSystemGetDriverVersion()),
    "count": ("", lambda h: str(nvml.nvmlDeviceGetCount())),
    "pstate": ("", lambda h: "P0" if nvml.nvmlDeviceGetUtilizationRates(h).gpu else "P8"),
    "utilization.gpu": ("%", lambda h: str(nvml.nvmlDeviceGetUtilizationRates(h).gpu)),
    "utilization.memory": ("%", lambda h: str(nvml.nvmlDeviceGetUtilizationRates(h).memory)),
    "memory.total": ("MiB", lambda h: _mib(nvml.nvmlDeviceGetMemoryInfo(h).total)),
    "memory.used": ("MiB", lambda h: _mib(nvml.nvmlDeviceGetMemoryInfo(h).used)),
    "memory.free": ("MiB", lambda h: _mib(nvml.nvmlDeviceGetMemoryInfo(h).free)),
    "power.draw": ("W", lambda h: _watts(nvml.nvmlDeviceGetPowerUsage(h))),
    "power.limit": ("W", lambda h: _watts(nvml.nvmlDeviceGetPowerManagementLimit(h))),
    "enforced.power.limit": ("W", lambda h: _watts(nvml.nvmlDeviceGetEnforcedPowerLimit(h))),
    "power.default_limit": ("W", lambda h: _watts(nvml.nvmlDeviceGetPowerManagementDefaultLimit(h))),
    "power.min_limit": ("W", lambda h: _watts(nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)[0])),
    "power.max_limit": ("W", lambda h: _watts(nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)[1])),
    "temperature.gpu": ("", lambda h: str(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))),
    "clocks.sm": ("MHz", lambda h: str(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))),
    "clocks.gr": ("MHz", lambda h: str(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_GRAPHICS))),
    "clocks.mem": ("MHz", lambda h: str(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))),
    "clocks.max.sm": ("MHz", lambda h: str(nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM))),
    "clocks_event_reasons.active": ("", lambda h: "0x%016X" % nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
    "clocks_event_reasons.gpu_idle": ("", _reason(0x1)),
    "clocks_event_reasons.sw_power_cap": ("", _reason(0x4)),
    "clocks_event_reasons.sw_thermal_slowdown": ("", _reason(0x20)),
    "clocks_event_reasons.hw_thermal_slowdown": ("", _reason(0x40)),
    "ecc.errors.uncorrected.volatile.total": (
        "",
        lambda h: str(
            nvml.nvmlDeviceGetTotalEccErrors(h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC)
        ),
    ),
    "ecc.errors.uncorrected.aggregate.total": (
        "",
        lambda h: str(
            nvml.nvmlDeviceGetTotalEccErrors(h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC)
        ),
    ),
}
ALIASES = {
    "gpu_name": "name",
    "gpu_uuid": "uuid",
    "gpu_bus_id": "pci.bus_id",
    "clocks_throttle_reasons.active": "clocks_event_reasons.active",
    "clocks_throttle_reasons.sw_power_cap": "clocks_event_reasons.sw_power_cap",
    "clocks_throttle_reasons.gpu_idle": "clocks_event_reasons.gpu_idle",
    "clocks.current.sm": "clocks.sm",
    "clocks.current.memory": "clocks.mem",
}
#: The first driver branch whose nvidia-smi knows the clock event reasons as `clocks_event_reasons.*` (R535 renamed
#: `clocks_throttle_reasons.*`, still accepted after it); before it, those names are not valid fields.
EVENT_REASONS_SINCE = 535


class SmiError(Exception):
    """A refusal: message for the user and nvidia-smi's exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _value(handle: object, getter: _Getter, unit: str, units: bool) -> str:
    try:
        text = str(getter(handle))
    except nvml.NVMLError as exc:
        return _failed_value(exc)
    return f"{text} {unit}" if units and unit else text


def _failed_value(exc: nvml.NVMLError) -> str:
    """What nvidia-smi prints in place of a value the driver would not give."""
    if exc.value == nvml.NVML_ERROR_GPU_IS_LOST:
        return "[GPU is lost]"
    if exc.value == nvml.NVML_ERROR_NOT_SUPPORTED:
        return "[N/A]"
    return "[Unknown Error]"


def _indexes(selector: Optional[str]) -> List[int]:
    count = nvml.nvmlDeviceGetCount()
    if selector is None:
        return list(range(count))
    out = []
    for part in selector.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) >= count:
            raise SmiError(f"No devices were found matching the identifier {part!r}.", 6)
        out.append(int(part))
    return out


def query(fields_csv: str, fmt: str, selector: Optional[str]) -> str:
    """`--query-gpu=FIELDS --format=FMT`: the CSV text nvidia-smi would print."""
    options = [o.strip() for o in fmt.split(",")]
    if not options or options[0] != "csv" or any(o not in ("csv", "noheader", "nounits") for o in options):
        raise SmiError(f'"{fmt}" is not a valid format: use csv[,noheader][,nounits].', 2)
    names = [f.strip() for f in fields_csv.split(",") if f.strip()]
    branch = int(nvml.nvmlSystemGetDriverVersion().split(".")[0])
    for name in names:
        renamed_later = name.startswith("clocks_event_reasons.") and branch < EVENT_REASONS_SINCE
        if ALIASES.get(name, name) not in FIELDS or renamed_later:
            raise SmiError(f'Field "{name}" is not a valid field to query.', 2)
    units = "nounits" not in options
    lines = []
    if "noheader" not in options:
        header = []
        for name in names:
            unit = FIELDS[ALIASES.get(name, name)][0]
            header.append(f"{name} [{unit}]" if units and unit else name)
        lines.append(", ".join(header))
    for index in _indexes(selector):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as exc:  # a lost GPU has no handle: every field says so
            lines.append(", ".join(_failed_value(exc) for _ in names))
            continue
        row = []
        for name in names:
            unit, getter = FIELDS[ALIASES.get(name, name)]
            row.append(_value(handle, getter, unit, units))
        lines.append(", ".join(row))
    return "\n".join(lines) + "\n"


def set_power_limit(watts_text: str, selector: Optional[str]) -> str:
    """`-pl WATTS`: validate every selected GPU first, then set; SmiError (exit 2) and no change when out of range."""
    try:
        watts = float(watts_text)
    except ValueError:
        raise SmiError(f'Invalid power limit "{watts_text}".', 2) from None
    plan = []
    for index in _indexes(selector):
        bus = _bus_id(index)
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as exc:
            raise _driver_failed(f"Unable to determine the device handle for GPU {bus}", bus, exc) from None
        try:
            low, high = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
        except nvml.NVMLError as exc:
            raise _driver_failed(f"Unable to query the power limit range of GPU {bus}", bus, exc) from None
        if not low <= watts * 1000 <= high:
            raise SmiError(
                f"Provided power limit {watts:.2f} W is not a valid power limit which should be between "
                f"{low / 1000:.2f} W and {high / 1000:.2f} W for GPU {bus}\nTerminating early due to previous errors.",
                2,
            )
        plan.append((handle, bus))
    out = []
    for handle, bus in plan:
        try:
            before = nvml.nvmlDeviceGetEnforcedPowerLimit(handle)
            nvml.nvmlDeviceSetPowerManagementLimit(handle, round(watts * 1000))
        except nvml.NVMLError as exc:
            raise _driver_failed(f"Failed to set power management limit for GPU {bus}", bus, exc) from None
        out.append(f"Power limit for GPU {bus} was set to {watts:.2f} W from {before / 1000:.2f} W.")
    out.append("All done.")
    return "\n".join(out) + "\n"


def _driver_failed(said: str, bus: str, exc: nvml.NVMLError) -> SmiError:
    """nvidia-smi's refusal when the driver fails GPU `bus`: `said: <error>`, a lost GPU as the tool says it.

    Exit 4 when the driver refused a non-root user (`Failed to set power management limit for GPU ...: Insufficient
    Permissions`, nvidia-smi's return code for "no permission"), else 15. A GPU lost between the range check and its
    set (it fell off the bus) used to end the shim with a traceback.
    """
    if exc.value == nvml.NVML_ERROR_NO_PERMISSION:
        return SmiError(f"{said}: {exc}", 4)
    if exc.value == nvml.NVML_ERROR_GPU_IS_LOST:
        lost = (
            f"Unable to determine the device handle for GPU {bus}: GPU is lost. Reboot the system to recover this GPU"
        )
        return SmiError(lost, 15)
    return SmiError(f"{said}: {exc}", 15)


def list_gpus(selector: Optional[str] = None) -> str:
    """`-L [-i IDX]`: one line per selected GPU (a bad index: exit 6, as for the other forms)."""
    lines = []
    for index in _indexes(selector):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            lines.append(f"GPU {index}: {nvml.nvmlDeviceGetName(handle)} (UUID: {nvml.nvmlDeviceGetUUID(handle)})")
        except nvml.NVMLError as exc:
            lines.append(f"GPU {index}: [{exc}]")
    return "\n".join(lines) + "\n"


def _parse(argv: List[str]) -> Dict[str, Optional[str]]:
    opts: Dict[str, Optional[str]] = {}
    takes_value = {
        "--node": "node", "--state-dir": "state_dir", "--factory": "factory", "--query-gpu": "query",
        "--format": "format", "-i": "id", "--id": "id", "-pl": "pl", "--power-limit": "pl",
        "--driver-version": "driver_version",
    }  # fmt: skip
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
        if key in takes_value:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise SmiError(f"Option {key} needs a value.", 2)
                value = argv[i]
            opts[takes_value[key]] = value
        elif arg in ("-L", "--list-gpus"):
            opts["list"] = "1"
        elif arg == "--garbled":
            opts["garbled"] = "1"
        elif arg == "--factoryctl-limits-lock":
            opts["limits_lock"] = "1"
        else:
            raise SmiError(f"Invalid combination of input arguments: {arg!r}. Please run 'nvidia-smi -h' for help.", 2)
        i += 1
    return opts


def main(argv: Optional[List[str]] = None) -> int:
    """Run the shim; prints what nvidia-smi would and returns its exit status."""
    try:
        opts = _parse(list(sys.argv[1:] if argv is None else argv))
        node = opts.get("node") or os.environ.get("FACTORYCTL_SIM_NODE")
        if not node:
            raise SmiError(
                "NVIDIA-SMI has failed because no simulated node was named (--node or FACTORYCTL_SIM_NODE).", 9
            )
        state_dir = opts.get("state_dir") or os.environ.get("FACTORYCTL_SIM_STATE_DIR")
        factory = opts.get("factory") or os.environ.get("FACTORYCTL_SIM_FACTORY") or "default"
        driver = opts.get("driver_version") or os.environ.get("FACTORYCTL_SIM_DRIVER_VERSION")
        if opts.get("limits_lock"):
            print(f"factoryctl-limits-lock:{limits_lock_path(state_dir or default_state_dir(), factory, node)}")
            return 0
        try:
            nvml.configure(node=node, state_dir=state_dir, factory=factory, driver_version=driver)
        except ValueError as exc:
            raise SmiError(f"Invalid driver version: {exc}.", 2) from None
        nvml.nvmlInit()
        if opts.get("pl") is not None:
            text = set_power_limit(str(opts["pl"]), opts.get("id"))
        elif opts.get("query") is not None:
            text = query(str(opts["query"]), opts.get("format") or "csv", opts.get("id"))
            if opts.get("garbled") or os.environ.get("FACTORYCTL_SIM_SMI_GARBLED") == "1":
                text = "".join(line.split(",")[0] + "\n" for line in text.splitlines())
        elif opts.get("list"):
            text = list_gpus(opts.get("id"))
        else:
            raise SmiError("This shim answers --query-gpu, -pl and -L only.", 2)
    except SmiError as exc:
        print(str(exc), file=sys.stdout if exc.code == 2 else sys.stderr)
        return exc.code
    sys.stdout.write(text)
    return 0


def write_shim(
    path: "os.PathLike[str] | str",
    node: str,
    state_dir: Optional[str] = None,
    factory: str = "default",
    python: Optional[str] = None,
    driver_version: Optional[str] = None,
    garbled: bool = False,
) -> Path:
    """Write an executable `nvidia-smi` script at `path` that runs this shim for `node` (put its dir first on PATH).

    `driver_version` (such as "525.147.05") makes it the nvidia-smi of that driver; the simulated default otherwise.
    `garbled` makes its query output unreadable (exit 0). Each call runs the script anew, so writing it again at the
    same path changes the nvidia-smi of a bridge already serving.
    """
    argv = [python or sys.executable, "-m", "factoryctl.sim.smi", "--node", node, "--factory", factory]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    if driver_version is not None:
        argv += ["--driver-version", driver_version]
    if garbled:
        argv.append("--garbled")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n', encoding="utf-8")
    target.chmod(0o755)
    return target


if __name__ == "__main__":
    sys.exit(main())
