"""One GPU and one node sample in the wire format (docs/agent-protocol.md), from the NVML wrapper.

Field names and units are the GPU fields of docs/cli.md; each comment names the `nvidia-smi --query-gpu` equivalent. A
value the driver does not give is null with its reason in `null_reasons`; a lost GPU is all nulls with `gpu_lost`.
Values that never change on a board (name, UUID, limit range, thresholds) are read once and cached.

Sampling tiers (docs/telemetry.md): the fast fields are read from NVML on every sample; the slow tier (`SLOW_FIELDS`:
temperature, uncorrectable ECC count, memory use and size, energy counter) only when its last read is older than
the caller's `slow_max_age`, its last values (and null reasons) being reused in between, so every key is present in
every sample. XID events and lost GPUs are never delayed by the tier: events are drained on every sample, a lost
GPU fails the first fast read, and an XID or ECC event (like a lost or unreadable GPU) makes that GPU's slow tier
due again on the next sample.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol

from factoryctl.agent.nvml import GPU_LOST, MISSING, NOT_SUPPORTED, DriverUnavailable, GpuLost, NvmlSession

GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "utilization_pct",
    "memory_used_mib",
    "memory_total_mib",
    "power_w",
    "power_limit_w",
    "power_limit_min_w",
    "power_limit_max_w",
    "power_limit_default_w",
    "energy_j",
    "temperature_c",
    "temperature_slowdown_c",
    "sm_clock_mhz",
    "throttle_reasons",
    "ecc_uncorrected",
    "processes",
    "xid_events",
    "null_reasons",
)
#: XIDs kept per GPU, newest last; the controller's `telemetry.health.MAX_XIDS` must be equal (a test checks).
MAX_XIDS = 8

# nvmlClocksEventReason* bits -> NVML's names without the prefix (nvidia-smi: clocks_event_reasons.<snake_case>).
REASON_NAMES = (
    (0x1, "GpuIdle"),
    (0x2, "ApplicationsClocksSetting"),
    (0x4, "SwPowerCap"),
    (0x8, "HwSlowdown"),
    (0x10, "SyncBoost"),
    (0x20, "SwThermalSlowdown"),
    (0x40, "HwThermalSlowdown"),
    (0x80, "HwPowerBrakeSlowdown"),
    (0x100, "DisplayClockSetting"),
)

_STATIC = ("uuid", "name", "power_limit_min_w", "power_limit_max_w", "power_limit_default_w", "temperature_slowdown_c")

#: The slow tier: the fields the controller stores every `controller.slow_interval_s` (factoryctl.store.rows.SLOW_TIER,
#: which a test keeps equal; the agent cannot import the store). `memory_total_mib` comes with `memory_used_mib`.
SLOW_FIELDS = ("memory_used_mib", "energy_j", "temperature_c", "ecc_uncorrected")
#: The slow tier's interval when a stream does not say (the default of `controller.slow_interval_s`).
DEFAULT_SLOW_INTERVAL_S = 5.0


def slow_max_age(interval_s: float, slow_interval_s: float) -> float:
    """How old slow-tier values may be before they are read again, for samples every `interval_s`.

    Half an interval of slack, as the controller's store picks its slow-tier samples, so stream jitter never pushes
    a read to the sample after it is due; a slow interval no longer than the interval reads every field every time.
    """
    return slow_interval_s - interval_s / 2.0


def reason_names(mask: int) -> List[str]:
    """Names of the set clock event reason bits."""
    return [name for bit, name in REASON_NAMES if mask & bit]


def _process_name(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or None
    except OSError:
        return None


class _RunningProcess(Protocol):
    """What the sampler reads of one entry of `nvmlDeviceGetComputeRunningProcesses` (pynvml's or the sim's)."""

    @property
    def pid(self) -> int:
        """The process id."""
        ...


class _SlowTier:
    """The last slow-tier read of one GPU: when (monotonic seconds), the values and their null reasons."""

    __slots__ = ("read_at", "reasons", "values")

    def __init__(self, read_at: float, values: Dict[str, Any], reasons: Dict[str, Optional[str]]) -> None:
        self.read_at = read_at
        self.values = values
        self.reasons = reasons


class GpuSampler:
    """Builds GPU dicts; keeps the static fields of each GPU after their first successful read, and its slow tier."""

    def __init__(self, nvml: NvmlSession, clock: Callable[[], float] = time.monotonic) -> None:
        self.nvml = nvml
        self._clock = clock
        self._static: Dict[int, Dict[str, Any]] = {}
        self._slow: Dict[int, _SlowTier] = {}
        self._events: Any = None
        self._events_ready = False
        self._xids: Dict[int, List[Dict[str, Any]]] = {}

    def watch_xids(self, count: int) -> None:
        """Register for XID and uncorrectable ECC events on every GPU (once; GPUs or drivers that cannot are skipped)."""
        if self._events_ready:
            return
        self._events_ready = True
        events, _ = self.nvml.query("nvmlEventSetCreate")
        if events is None:
            return
        xid_type = self._xid_type()
        ecc_type = self.nvml.constant("nvmlEventTypeDoubleBitEccError", 0x2)  # makes the slow tier due at once
        for index in range(count):
            try:
                handle = self.nvml.handle(index)
                _, why = self.nvml.query("nvmlDeviceRegisterEvents", handle, xid_type | ecc_type, events)
                if why is not None:  # a board without ECC refuses the whole mask: XIDs alone, then
                    self.nvml.query("nvmlDeviceRegisterEvents", handle, xid_type, events)
            except (GpuLost, DriverUnavailable):
                continue
        self._events = events

    def _xid_type(self) -> int:
        return self.nvml.constant("nvmlEventTypeXidCriticalError", 0x8)

    def drain_xids(self) -> None:
        """Collect XID events that arrived since the last sample (never blocks).

        Any event (an XID, an uncorrectable ECC error) makes its GPU's slow tier due, so it is never delayed by it.
        """
        if self._events is None:
            return
        xid_type = self._xid_type()
        for _ in range(64):
            try:
                event, _ = self.nvml.query("nvmlEventSetWait_v2", self._events, 0)
            except GpuLost:
                continue
            if event is None:
                return
            index = self.nvml.index_of(event.device)
            if index is None:
                continue
            self.refresh([int(index)])
            if not int(getattr(event, "eventType", xid_type)) & xid_type:
                continue
            xids = self._xids.setdefault(int(index), [])
            xids.append({"xid": int(event.eventData), "time": time.time()})
            del xids[:-MAX_XIDS]

    def refresh(self, indexes: Iterable[int]) -> None:
        """Make these GPUs' slow tier due: the next sample reads it from the driver whatever its age."""
        for index in indexes:
            self._slow.pop(index, None)

    def null_gpu(self, index: int, reason: str) -> Dict[str, Any]:
        """A GPU that cannot be read at all: every field null with `reason` (XIDs seen before stay listed)."""
        gpu: Dict[str, Any] = {f: None for f in GPU_FIELDS}
        gpu.update(index=index, xid_events=list(self._xids.get(index, ())))
        gpu["null_reasons"] = {f: reason for f in GPU_FIELDS if f not in ("index", "xid_events", "null_reasons")}
        return gpu

    def sample(self, index: int, slow_max_age: Optional[float] = None) -> Dict[str, Any]:
        """One GPU now; a lost GPU is all null with `gpu_lost`, one without a handle all null with the cause.

        The slow tier is read again when its last read is `slow_max_age` seconds old or older; None reads it now.
        """
        try:
            return self._sample(index, slow_max_age)
        except GpuLost:
            self.refresh([index])  # when it comes back, its first sample reads everything
            return self.null_gpu(index, GPU_LOST)
        except DriverUnavailable as exc:
            self.refresh([index])
            return self.null_gpu(index, str(exc))

    def _static_fields(
        self, index: int, handle: object, gpu: Dict[str, Any], reasons: Dict[str, Optional[str]]
    ) -> None:
        cached = self._static.setdefault(index, {})
        if len(cached) == len(_STATIC):
            gpu.update(cached)
            return
        q = self.nvml.query
        values: Dict[str, Any] = {}
        values["uuid"], reasons["uuid"] = q("nvmlDeviceGetUUID", handle)  # uuid
        values["name"], reasons["name"] = q("nvmlDeviceGetName", handle)  # name
        limits, why = q("nvmlDeviceGetPowerManagementLimitConstraints", handle)  # power.min_limit, power.max_limit
        values["power_limit_min_w"] = limits[0] / 1000.0 if limits else None
        values["power_limit_max_w"] = limits[1] / 1000.0 if limits else None
        reasons["power_limit_min_w"] = reasons["power_limit_max_w"] = why
        default, reasons["power_limit_default_w"] = q("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        values["power_limit_default_w"] = default / 1000.0 if default is not None else None  # power.default_limit
        slowdown = self.nvml.constant("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1)
        values["temperature_slowdown_c"], reasons["temperature_slowdown_c"] = q(
            "nvmlDeviceGetTemperatureThreshold", handle, slowdown
        )  # temperature.gpu.tlimit's threshold
        for key, value in values.items():
            if value is not None:
                cached[key] = value
        gpu.update(values)

    def _slow_fields(
        self, handle: object, gpu: Dict[str, Any], reasons: Dict[str, Optional[str]], last: Optional[_SlowTier]
    ) -> _SlowTier:
        """Read the slow tier into `gpu` and `reasons`, or reuse `last` when given; returns what was used."""
        if last is not None:
            gpu.update(last.values)
            reasons.update(last.reasons)
            return last
        nvml = self.nvml
        q = nvml.query
        values: Dict[str, Any] = {}
        why: Dict[str, Optional[str]] = {}
        mem, why["memory_used_mib"] = q("nvmlDeviceGetMemoryInfo", handle)  # memory.used, memory.total
        values["memory_used_mib"] = round(mem.used / 2**20, 1) if mem is not None else None
        values["memory_total_mib"] = round(mem.total / 2**20, 1) if mem is not None else None
        why["memory_total_mib"] = why["memory_used_mib"]
        energy, why["energy_j"] = q("nvmlDeviceGetTotalEnergyConsumption", handle)  # total_energy_consumption
        values["energy_j"] = energy / 1000.0 if energy is not None else None
        sensor = nvml.constant("NVML_TEMPERATURE_GPU", 0)
        temp, why["temperature_c"] = q("nvmlDeviceGetTemperature", handle, sensor)  # temperature.gpu
        values["temperature_c"] = float(temp) if temp is not None else None
        ecc, why["ecc_uncorrected"] = q(
            "nvmlDeviceGetTotalEccErrors",
            handle,
            nvml.constant("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1),
            nvml.constant("NVML_VOLATILE_ECC", 0),
        )  # ecc.errors.uncorrected.volatile.total
        values["ecc_uncorrected"] = int(ecc) if ecc is not None else None
        gpu.update(values)
        reasons.update(why)
        return _SlowTier(self._clock(), values, why)

    def _sample(self, index: int, slow_max_age: Optional[float]) -> Dict[str, Any]:
        nvml = self.nvml
        q = nvml.query
        handle = nvml.handle(index)
        gpu: Dict[str, Any] = {"index": index}
        reasons: Dict[str, Optional[str]] = {}
        self._static_fields(index, handle, gpu, reasons)
        # Fast tier first: a lost GPU fails here, on every sample, whatever the slow tier's age.
        util, reasons["utilization_pct"] = q("nvmlDeviceGetUtilizationRates", handle)  # utilization.gpu
        gpu["utilization_pct"] = float(util.gpu) if util is not None else None
        power, reasons["power_w"] = q("nvmlDeviceGetPowerUsage", handle)  # power.draw
        gpu["power_w"] = power / 1000.0 if power is not None else None
        limit, reasons["power_limit_w"] = q("nvmlDeviceGetEnforcedPowerLimit", handle)  # enforced.power.limit
        gpu["power_limit_w"] = limit / 1000.0 if limit is not None else None
        clock, reasons["sm_clock_mhz"] = q("nvmlDeviceGetClockInfo", handle, nvml.constant("NVML_CLOCK_SM", 1))
        gpu["sm_clock_mhz"] = float(clock) if clock is not None else None  # clocks.sm
        mask, why = q("nvmlDeviceGetCurrentClocksEventReasons", handle)  # clocks_event_reasons.*
        if mask is None and why != "not supported":
            mask, why = q("nvmlDeviceGetCurrentClocksThrottleReasons", handle)  # drivers before 535
        gpu["throttle_reasons"], reasons["throttle_reasons"] = (
            (reason_names(int(mask)) if mask is not None else None),
            why,
        )
        procs, reasons["processes"] = q("nvmlDeviceGetComputeRunningProcesses", handle)  # --query-compute-apps
        gpu["processes"] = None if procs is None else [self._process(p) for p in procs]
        last = self._slow.get(index)
        if last is not None and (slow_max_age is None or self._clock() - last.read_at >= slow_max_age):
            last = None
        used = self._slow_fields(handle, gpu, reasons, last)
        if any(why not in (None, NOT_SUPPORTED, MISSING) for why in used.reasons.values()):
            self._slow.pop(index, None)  # a read that failed for now (timeout, driver error) is retried next sample
        else:
            self._slow[index] = used
        gpu["xid_events"] = list(self._xids.get(index, ()))
        gpu["null_reasons"] = {k: reasons[k] for k in GPU_FIELDS if reasons.get(k) is not None and gpu.get(k) is None}
        return {f: gpu.get(f) for f in GPU_FIELDS}

    @staticmethod
    def _process(proc: _RunningProcess) -> Dict[str, Any]:
        used = getattr(proc, "usedGpuMemory", None)
        pid = int(proc.pid)
        return {
            "pid": pid,
            "used_memory_mib": round(used / 2**20, 1) if used is not None else None,
            "name": _process_name(pid),
        }


def node_sample(
    sampler: GpuSampler, count: int, backend: str, host: Dict[str, Any], slow_max_age: Optional[float] = None
) -> Dict[str, Any]:
    """A node sample: `{"time", "backend", "gpus", "host"}`; DriverUnavailable propagates.

    XID events are drained first, on every sample; `slow_max_age` is GpuSampler.sample's (None: read every field).
    """
    sampler.watch_xids(count)
    sampler.drain_xids()
    gpus = [sampler.sample(index, slow_max_age) for index in range(count)]
    return {"time": time.time(), "backend": backend, "gpus": gpus, "host": host}
