"""The simulated NVML driver: pynvml's functions, names, units and errors over a `SimNode`.

Call `configure(...)` once (the agent does it from its argv), then use the module exactly like `pynvml`:
`nvmlInit()`, `nvmlDeviceGetHandleByIndex(0)`, `nvmlDeviceGetPowerUsage(handle)` in milliwatts, energy in
millijoules, `NVMLError_NotSupported` for a field the inventory lists as unsupported, `NVMLError_GpuIsLost` for a
lost GPU, `NVMLError_InvalidArgument` for a power limit outside the board's range, and, on a node configured with
`setters_need_root`, `NVMLError_NoPermission` for every setter called by a process whose euid is not 0 (real NVML's
"Requires root/admin permissions"; off by default so a demo runs as any user). Arguments are converted as pynvml's
ctypes do (a float is a TypeError, -1 the largest unsigned value) and a failing state file is NVMLError_Unknown
(`nvml_boundary.py`). Only the functions the agent and tools need are here; a test checks each one against the
installed nvidia-ml-py's signature.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from factoryctl.sim import errors as _errors
from factoryctl.sim.errors import *  # noqa: F403 - NVMLError, NVMLError_*, NVML_ERROR_* as in pynvml
from factoryctl.sim.errors import (
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_TIMEOUT,
    NVML_ERROR_UNINITIALIZED,
    NVMLError,
)
from factoryctl.sim.nvml_boundary import SimDeviceHandle, SimStruct
from factoryctl.sim.nvml_boundary import c_unsigned as _c_unsigned
from factoryctl.sim.nvml_boundary import device as _device
from factoryctl.sim.nvml_boundary import devices as _devices
from factoryctl.sim.nvml_boundary import disk_errors as _disk_errors
from factoryctl.sim.nvml_constants import *  # noqa: F403 - NVML_*, nvml* constants as in pynvml
from factoryctl.sim.nvml_constants import (
    CLOCKS_EVENT_REASONS_SINCE_BRANCH,
    DRIVER_VERSION,
    NVML_AGGREGATE_ECC,
    NVML_CLOCK_GRAPHICS,
    NVML_CLOCK_MEM,
    NVML_CLOCK_SM,
    NVML_CLOCK_VIDEO,
    NVML_MEMORY_ERROR_TYPE_CORRECTED,
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
    NVML_TEMPERATURE_GPU,
    NVML_TEMPERATURE_THRESHOLD_COUNT,
    NVML_TEMPERATURE_THRESHOLD_GPU_MAX,
    NVML_TEMPERATURE_THRESHOLD_MEM_MAX,
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    NVML_VOLATILE_ECC,
    UNSUPPORTABLE_FIELDS,
    nvmlEventTypeDoubleBitEccError,
    nvmlEventTypeXidCriticalError,
)
from factoryctl.sim.profiles import get_profile
from factoryctl.sim.state import GpuReading, SimNode

_settings: Dict[str, Any] = {}
_driver_version: Optional[str] = None
_node: Optional[SimNode] = None
_refcount = 0
_unsupported: frozenset[str] = frozenset()


def unsupported_functions(fields: Sequence[str]) -> frozenset[str]:
    """NVML function names made NOT_SUPPORTED by `fields` (GPU field names or NVML function names)."""
    out: Set[str] = set()
    for name in fields:
        if name in UNSUPPORTABLE_FIELDS:
            out.update(UNSUPPORTABLE_FIELDS[name])
        elif name.startswith("nvml") and name in globals():
            out.add(name)
        else:
            known = ", ".join(sorted(UNSUPPORTABLE_FIELDS))
            raise ValueError(f"{name!r} is not a GPU field the simulated driver can withhold; known: {known}")
    return frozenset(out)


def configure(
    node: str,
    state_dir: Optional[str] = None,
    factory: str = "default",
    profile: Optional[str] = None,
    gpus: Optional[int] = None,
    seed: Optional[int] = None,
    unsupported: Optional[Sequence[str]] = None,
    workload: Optional[str] = None,
    clock: Optional[Callable[[], float]] = None,
    driver_version: Optional[str] = None,
    setters_need_root: Optional[bool] = None,
) -> None:
    """Choose the simulated node `nvmlInit` opens (not part of pynvml). ValueError on a bad profile or field.

    `driver_version` (such as "525.147.05") is the version the driver reports, DRIVER_VERSION when None.
    `setters_need_root` makes every setter refuse a process whose euid is not 0 (None keeps the node's setting).
    """
    global _node, _refcount, _driver_version
    if driver_version is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)?", driver_version):
        raise ValueError(f"{driver_version!r} is not a driver version such as {DRIVER_VERSION}")
    if unsupported is not None:
        unsupported_functions(unsupported)
    if profile is not None:
        get_profile(profile)
    _settings.clear()
    _settings.update(
        node=node, state_dir=state_dir, factory=factory, profile=profile, gpus=gpus, seed=seed,
        unsupported=None if unsupported is None else list(unsupported), workload=workload, clock=clock,
        setters_need_root=setters_need_root,
    )  # fmt: skip
    _node, _refcount, _driver_version = None, 0, driver_version
    _devices.clear()


def sim_node() -> SimNode:
    """The open simulated node (not part of pynvml); NVMLError_Uninitialized before `nvmlInit`."""
    if _node is None or _refcount <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _node


# -- library --------------------------------------------------------------------------------------------------


def nvmlInitWithFlags(flags: int) -> None:
    """Open the configured simulated node (environment FACTORYCTL_SIM_NODE/_STATE_DIR/_FACTORY if unconfigured)."""
    global _node, _refcount, _unsupported
    if _node is None:
        settings = dict(_settings)
        if not settings:
            if not os.environ.get("FACTORYCTL_SIM_NODE"):
                raise NVMLError(_errors.NVML_ERROR_DRIVER_NOT_LOADED)
            settings = {
                "node": os.environ["FACTORYCTL_SIM_NODE"],
                "state_dir": os.environ.get("FACTORYCTL_SIM_STATE_DIR"),
                "factory": os.environ.get("FACTORYCTL_SIM_FACTORY", "default"),
            }
        with _disk_errors():
            _node = SimNode(**settings)
        _unsupported = unsupported_functions(_node.unsupported)
    _refcount += 1


def nvmlInit() -> None:
    """As pynvml.nvmlInit."""
    nvmlInitWithFlags(0)


def nvmlShutdown() -> None:
    """As pynvml.nvmlShutdown: one fewer reference; more shutdowns than inits are no error (NVML's documentation).

    NVMLError_Uninitialized only in a process that never initialised the library, where pynvml has no library yet.
    """
    global _refcount
    if _node is None:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    _refcount = max(0, _refcount - 1)


def _driver_branch() -> int:
    """The simulated driver's branch (major version), e.g. 525 for 525.147.05."""
    return int((_driver_version or DRIVER_VERSION).split(".")[0])


def nvmlErrorString(result: int) -> str:
    """The error string of a return code."""
    return str(NVMLError(result))


def nvmlSystemGetDriverVersion() -> str:
    """The driver version string: DRIVER_VERSION, or the one `configure` chose."""
    sim_node()
    return _driver_version or DRIVER_VERSION


def nvmlDeviceGetCount() -> int:
    """How many GPUs the simulated node has."""
    return sim_node().gpu_count


def nvmlDeviceGetHandleByIndex(index: int) -> SimDeviceHandle:
    """A handle for GPU `index`; NVMLError_InvalidArgument when out of range, NVMLError_GpuIsLost for a lost GPU."""
    position = _c_unsigned(index)
    node = sim_node()
    if not position < node.gpu_count:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    with _disk_errors():
        lost = node.reading(position).lost
    if lost:
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    return _device(position)


def nvmlDeviceGetHandleByUUID(uuid: str) -> SimDeviceHandle:
    """A handle for the GPU with this UUID; NVMLError_NotFound otherwise."""
    node = sim_node()
    for i in range(node.gpu_count):
        with _disk_errors():
            reading = node.reading(i)
        if reading.uuid == (uuid.decode() if isinstance(uuid, bytes) else uuid):
            return _device(i)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def _read(handle: SimDeviceHandle, function: str) -> GpuReading:
    """The GPU behind `handle`, raising as the real driver would for a lost GPU or an unsupported query."""
    node = sim_node()
    index = getattr(handle, "index", None)
    if not isinstance(index, int) or not 0 <= index < node.gpu_count:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    with _disk_errors():
        reading = node.reading(index)
    if reading.lost:
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    if function in _unsupported:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return reading


def nvmlDeviceGetIndex(handle: SimDeviceHandle) -> int:
    """The GPU's index."""
    return _read(handle, "nvmlDeviceGetIndex").index


def nvmlDeviceGetName(handle: SimDeviceHandle) -> str:
    """Product name, e.g. "NVIDIA H100 80GB HBM3" (nvidia-smi: name)."""
    return _read(handle, "nvmlDeviceGetName").name


def nvmlDeviceGetUUID(handle: SimDeviceHandle) -> str:
    """`GPU-` + a UUID, stable per factory, node and GPU (nvidia-smi: uuid)."""
    return _read(handle, "nvmlDeviceGetUUID").uuid


def nvmlDeviceGetUtilizationRates(handle: SimDeviceHandle) -> SimStruct:
    """`.gpu` and `.memory` in percent (nvidia-smi: utilization.gpu, utilization.memory)."""
    r = _read(handle, "nvmlDeviceGetUtilizationRates")
    return SimStruct(gpu=r.utilization_pct, memory=int(r.utilization_pct * 0.6))


def nvmlDeviceGetMemoryInfo(handle: SimDeviceHandle, version: Optional[int] = None) -> SimStruct:
    """`.total`, `.free`, `.used` in bytes (nvidia-smi: memory.total, memory.free, memory.used)."""
    r = _read(handle, "nvmlDeviceGetMemoryInfo")
    total, used = r.memory_total_mib * 2**20, int(r.memory_used_mib * 2**20)
    if version:
        return SimStruct(version=version, total=total, reserved=0, free=total - used, used=used)
    return SimStruct(total=total, free=total - used, used=used)


def nvmlDeviceGetPowerUsage(handle: SimDeviceHandle) -> int:
    """Current draw in milliwatts (nvidia-smi: power.draw)."""
    return round(_read(handle, "nvmlDeviceGetPowerUsage").power_w * 1000)


def nvmlDeviceGetEnforcedPowerLimit(handle: SimDeviceHandle) -> int:
    """Enforced limit in milliwatts (nvidia-smi: enforced.power.limit)."""
    return round(_read(handle, "nvmlDeviceGetEnforcedPowerLimit").limit_w * 1000)


def nvmlDeviceGetPowerManagementLimit(handle: SimDeviceHandle) -> int:
    """The set limit in milliwatts (nvidia-smi: power.limit)."""
    return round(_read(handle, "nvmlDeviceGetPowerManagementLimit").limit_w * 1000)


def nvmlDeviceGetPowerManagementLimitConstraints(handle: SimDeviceHandle) -> List[int]:
    """[min, max] settable limit in milliwatts (nvidia-smi: power.min_limit, power.max_limit)."""
    r = _read(handle, "nvmlDeviceGetPowerManagementLimitConstraints")
    return [int(r.limit_min_w * 1000), int(r.limit_max_w * 1000)]


def nvmlDeviceGetPowerManagementDefaultLimit(handle: SimDeviceHandle) -> int:
    """Default limit in milliwatts (nvidia-smi: power.default_limit)."""
    return int(_read(handle, "nvmlDeviceGetPowerManagementDefaultLimit").limit_default_w * 1000)


def nvmlDeviceGetTotalEnergyConsumption(handle: SimDeviceHandle) -> int:
    """Energy since the driver loaded, in millijoules (nvidia-smi: total_energy_consumption)."""
    return int(_read(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_j * 1000)


def nvmlDeviceGetTemperature(handle: SimDeviceHandle, sensor: int) -> int:
    """GPU temperature in whole °C (nvidia-smi: temperature.gpu).

    An unsigned int, as NVML's: the sensor's whole degrees reached, truncated rather than rounded, so a GPU the
    thermal slowdown holds under GPU max + 1 never reads above GPU max (85.6 °C read as 86 on an 85 °C GPU max).
    """
    sensor = _c_unsigned(sensor)
    r = _read(handle, "nvmlDeviceGetTemperature")
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return int(r.temperature_c)


def nvmlDeviceGetTemperatureThreshold(handle: SimDeviceHandle, threshold: int) -> int:
    """A temperature threshold in °C (nvidia-smi: temperature.gpu.tlimit and friends).

    NVMLError_InvalidArgument for a threshold type NVML does not define, NotSupported for one the board lacks.
    """
    threshold = _c_unsigned(threshold)
    r = _read(handle, "nvmlDeviceGetTemperatureThreshold")
    if threshold >= NVML_TEMPERATURE_THRESHOLD_COUNT:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    values = {
        NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: r.shutdown_c,
        NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: r.slowdown_c,
        NVML_TEMPERATURE_THRESHOLD_GPU_MAX: sim_node().profile.gpu_max_c,
        NVML_TEMPERATURE_THRESHOLD_MEM_MAX: 95,
    }
    if threshold not in values:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return values[threshold]


def _clock_of_domain(clock_type: int, sm_mhz: int, mem_mhz: int) -> int:
    """One clock domain's MHz from the SM and memory clocks (graphics is the SM clock, video 90 % of it)."""
    if clock_type in (NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM):
        return sm_mhz
    if clock_type == NVML_CLOCK_MEM:
        return mem_mhz
    if clock_type == NVML_CLOCK_VIDEO:
        return int(sm_mhz * 0.9)
    raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)


def nvmlDeviceGetClockInfo(handle: SimDeviceHandle, type: int) -> int:
    """Current clock in MHz (nvidia-smi: clocks.sm, clocks.mem ...)."""
    clock_type = _c_unsigned(type)
    r = _read(handle, "nvmlDeviceGetClockInfo")
    return _clock_of_domain(clock_type, r.sm_clock_mhz, r.mem_clock_mhz)


def nvmlDeviceGetMaxClockInfo(handle: SimDeviceHandle, type: int) -> int:
    """Maximum clock in MHz (nvidia-smi: clocks.max.sm ...)."""
    clock_type = _c_unsigned(type)
    r = _read(handle, "nvmlDeviceGetMaxClockInfo")
    return _clock_of_domain(clock_type, r.sm_clock_max_mhz, r.mem_clock_mhz)


def nvmlDeviceGetCurrentClocksEventReasons(handle: SimDeviceHandle) -> int:
    """Bit mask of nvmlClocksEventReason* (nvidia-smi: clocks_event_reasons.active).

    NVMLError_FunctionNotFound from a simulated driver before R535, whose library lacks the function (pynvml's
    lookup of the symbol fails before any argument is looked at).
    """
    sim_node()
    if _driver_branch() < CLOCKS_EVENT_REASONS_SINCE_BRANCH:
        raise NVMLError(_errors.NVML_ERROR_FUNCTION_NOT_FOUND)
    return _read(handle, "nvmlDeviceGetCurrentClocksEventReasons").reasons


def nvmlDeviceGetCurrentClocksThrottleReasons(handle: SimDeviceHandle) -> int:
    """The deprecated name of nvmlDeviceGetCurrentClocksEventReasons."""
    return _read(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").reasons


def nvmlDeviceGetTotalEccErrors(handle: SimDeviceHandle, errorType: int, counterType: int) -> int:
    """ECC error count (nvidia-smi: ecc.errors.uncorrected.volatile.total ...)."""
    error_type, counter_type = _c_unsigned(errorType), _c_unsigned(counterType)
    r = _read(handle, "nvmlDeviceGetTotalEccErrors")
    known_error = error_type in (NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
    if not known_error or counter_type not in (NVML_VOLATILE_ECC, NVML_AGGREGATE_ECC):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    if error_type == NVML_MEMORY_ERROR_TYPE_CORRECTED:
        return 0
    return r.ecc_volatile if counter_type == NVML_VOLATILE_ECC else r.ecc_aggregate


def nvmlDeviceGetComputeRunningProcesses(handle: SimDeviceHandle) -> List[SimStruct]:
    """Processes on the GPU: `.pid`, `.usedGpuMemory` in bytes (nvidia-smi --query-compute-apps=pid,used_memory)."""
    r = _read(handle, "nvmlDeviceGetComputeRunningProcesses")
    return [
        SimStruct(
            pid=p.pid,
            usedGpuMemory=int(p.used_memory_mib * 2**20),
            gpuInstanceId=0xFFFFFFFF,
            computeInstanceId=0xFFFFFFFF,
        )
        for p in r.processes
    ]


def _check_may_set() -> None:
    """NVMLError_NoPermission for a setter on a node whose setters need root, unless this process's euid is 0."""
    if sim_node().setters_need_root and _effective_uid() != 0:
        raise NVMLError(NVML_ERROR_NO_PERMISSION)


#: This process's effective uid, looked up at each set (a test may stand another user in for it).
_effective_uid: Callable[[], int] = os.geteuid


def nvmlDeviceSetPowerManagementLimit(handle: SimDeviceHandle, limit: int) -> None:
    """Set the power limit in milliwatts; NVMLError_InvalidArgument outside the constraints (nvidia-smi -pl).

    NVMLError_NoPermission when the node's setters need root and this process is not root (real NVML: "Requires
    root/admin permissions"); TypeError for a limit that is not an integer, as pynvml's `c_uint(limit)` raises.
    """
    milliwatts = _c_unsigned(limit)
    r = _read(handle, "nvmlDeviceSetPowerManagementLimit")
    _check_may_set()
    if not r.limit_min_w * 1000 <= milliwatts <= r.limit_max_w * 1000:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    with _disk_errors():
        sim_node().set_power_limit(r.index, milliwatts / 1000.0)


# -- events ---------------------------------------------------------------------------------------------------


class SimEventSet:
    """What `nvmlEventSetCreate` returns: registered GPUs and the last event seen."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.masks: Dict[int, int] = {}


_EVENT_TYPES = {"xid": nvmlEventTypeXidCriticalError, "ecc": nvmlEventTypeDoubleBitEccError}


def nvmlEventSetCreate() -> SimEventSet:
    """A new event set; it reports events injected after this call."""
    node = sim_node()
    with _disk_errors():
        return SimEventSet(node.last_event_seq())


def _supported_event_types() -> int:
    """XID events, and ECC events unless the node withholds ECC (NVML: ECC events only on ECC-enabled devices)."""
    ecc = 0 if "nvmlDeviceGetTotalEccErrors" in _unsupported else nvmlEventTypeDoubleBitEccError
    return nvmlEventTypeXidCriticalError | ecc


def nvmlDeviceRegisterEvents(handle: SimDeviceHandle, eventTypes: int, eventSet: SimEventSet) -> None:
    """Deliver `eventTypes` of this GPU to `eventSet`; NVMLError_NotSupported, none registered, if one it lacks."""
    types = _c_unsigned(eventTypes, bits=64)
    r = _read(handle, "nvmlDeviceRegisterEvents")
    if types & ~_supported_event_types():
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    eventSet.masks[r.index] = eventSet.masks.get(r.index, 0) | types


def nvmlDeviceGetSupportedEventTypes(handle: SimDeviceHandle) -> int:
    """The event types the simulated GPU can deliver."""
    _read(handle, "nvmlDeviceGetSupportedEventTypes")
    return _supported_event_types()


def nvmlEventSetWait_v2(eventSet: SimEventSet, timeoutms: int) -> SimStruct:
    """The next event (`.device`, `.eventType`, `.eventData` = the XID), or NVMLError_Timeout after `timeoutms`."""
    deadline = time.monotonic() + _c_unsigned(timeoutms) / 1000.0
    while True:
        node = sim_node()
        with _disk_errors():
            events = node.events_after(eventSet.seq)
        for event in events:
            eventSet.seq = int(event["seq"])
            kind = _EVENT_TYPES.get(str(event["type"]), 0)
            if eventSet.masks.get(int(event["gpu"]), 0) & kind:
                return SimStruct(
                    device=_device(int(event["gpu"])),
                    eventType=kind,
                    eventData=int(event["data"]),
                    gpuInstanceId=0xFFFFFFFF,
                    computeInstanceId=0xFFFFFFFF,
                )
        if time.monotonic() >= deadline:
            raise NVMLError(NVML_ERROR_TIMEOUT)
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def nvmlEventSetWait(eventSet: SimEventSet, timeoutms: int) -> SimStruct:
    """As nvmlEventSetWait_v2."""
    return nvmlEventSetWait_v2(eventSet, timeoutms)


def nvmlEventSetFree(eventSet: SimEventSet) -> None:
    """Release an event set."""
    eventSet.masks.clear()
