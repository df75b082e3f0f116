"""One GPU and one node sample in the wire format (docs/agent-protocol.md), from the NVML wrapper.

Field names and units are DESIGN.md's GPU fields; each comment names the `nvidia-smi --query-gpu` equivalent. A
value the driver does not give is null with its reason in `null_reasons`; a lost GPU is all nulls with `gpu_lost`.
Values that never change on a board (name, UUID, limit range, thresholds, memory size) are read once and cached.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from factoryctl.agent.nvml import GPU_LOST, DriverUnavailable, GpuLost, NvmlSession

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
MAX_XIDS = 8  # per GPU, newest last

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


def reason_names(mask: int) -> List[str]:
    """Names of the set clock event reason bits."""
    return [name for bit, name in REASON_NAMES if mask & bit]


def _process_name(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or None
    except OSError:
        return None


class GpuSampler:
    """Builds GPU dicts; keeps the static fields of each GPU after their first successful read."""

    def __init__(self, nvml: NvmlSession) -> None:
        self.nvml = nvml
        self._static: Dict[int, Dict[str, Any]] = {}
        self._events: Any = None
        self._events_ready = False
        self._xids: Dict[int, List[Dict[str, Any]]] = {}

    def watch_xids(self, count: int) -> None:
        """Register for XID events on every GPU (once; GPUs or drivers that cannot are skipped)."""
        if self._events_ready:
            return
        self._events_ready = True
        events, _ = self.nvml.query("nvmlEventSetCreate")
        if events is None:
            return
        xid_type = self.nvml.constant("nvmlEventTypeXidCriticalError", 0x8)
        for index in range(count):
            try:
                self.nvml.query("nvmlDeviceRegisterEvents", self.nvml.handle(index), xid_type, events)
            except (GpuLost, DriverUnavailable):
                continue
        self._events = events

    def drain_xids(self) -> None:
        """Collect XID events that arrived since the last sample (never blocks)."""
        if self._events is None:
            return
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
            xids = self._xids.setdefault(int(index), [])
            xids.append({"xid": int(event.eventData), "time": time.time()})
            del xids[:-MAX_XIDS]

    def null_gpu(self, index: int, reason: str) -> Dict[str, Any]:
        """A GPU that cannot be read at all: every field null with `reason` (XIDs seen before stay listed)."""
        gpu: Dict[str, Any] = {f: None for f in GPU_FIELDS}
        gpu.update(index=index, xid_events=list(self._xids.get(index, ())))
        gpu["null_reasons"] = {f: reason for f in GPU_FIELDS if f not in ("index", "xid_events", "null_reasons")}
        return gpu

    def sample(self, index: int) -> Dict[str, Any]:
        """One GPU now; a lost GPU is all null with `gpu_lost`, one without a handle all null with the cause."""
        try:
            return self._sample(index)
        except GpuLost:
            return self.null_gpu(index, GPU_LOST)
        except DriverUnavailable as exc:
            return self.null_gpu(index, str(exc))

    def _static_fields(self, index: int, handle: Any, gpu: Dict[str, Any], reasons: Dict[str, Optional[str]]) -> None:
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

    def _sample(self, index: int) -> Dict[str, Any]:
        nvml = self.nvml
        q = nvml.query
        handle = nvml.handle(index)
        gpu: Dict[str, Any] = {"index": index}
        reasons: Dict[str, Optional[str]] = {}
        self._static_fields(index, handle, gpu, reasons)
        util, reasons["utilization_pct"] = q("nvmlDeviceGetUtilizationRates", handle)  # utilization.gpu
        gpu["utilization_pct"] = float(util.gpu) if util is not None else None
        mem, why = q("nvmlDeviceGetMemoryInfo", handle)  # memory.used, memory.total
        gpu["memory_used_mib"] = round(mem.used / 2**20, 1) if mem is not None else None
        gpu["memory_total_mib"] = round(mem.total / 2**20, 1) if mem is not None else None
        reasons["memory_used_mib"] = reasons["memory_total_mib"] = why
        power, reasons["power_w"] = q("nvmlDeviceGetPowerUsage", handle)  # power.draw
        gpu["power_w"] = power / 1000.0 if power is not None else None
        limit, reasons["power_limit_w"] = q("nvmlDeviceGetEnforcedPowerLimit", handle)  # enforced.power.limit
        gpu["power_limit_w"] = limit / 1000.0 if limit is not None else None
        energy, reasons["energy_j"] = q("nvmlDeviceGetTotalEnergyConsumption", handle)  # total_energy_consumption
        gpu["energy_j"] = energy / 1000.0 if energy is not None else None
        sensor = nvml.constant("NVML_TEMPERATURE_GPU", 0)
        temp, reasons["temperature_c"] = q("nvmlDeviceGetTemperature", handle, sensor)  # temperature.gpu
        gpu["temperature_c"] = float(temp) if temp is not None else None
        clock, reasons["sm_clock_mhz"] = q("nvmlDeviceGetClockInfo", handle, nvml.constant("NVML_CLOCK_SM", 1))
        gpu["sm_clock_mhz"] = float(clock) if clock is not None else None  # clocks.sm
        mask, why = q("nvmlDeviceGetCurrentClocksEventReasons", handle)  # clocks_event_reasons.*
        if mask is None and why != "not supported":
            mask, why = q("nvmlDeviceGetCurrentClocksThrottleReasons", handle)  # drivers before 535
        gpu["throttle_reasons"], reasons["throttle_reasons"] = (
            (reason_names(int(mask)) if mask is not None else None),
            why,
        )
        ecc, reasons["ecc_uncorrected"] = q(
            "nvmlDeviceGetTotalEccErrors",
            handle,
            nvml.constant("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1),
            nvml.constant("NVML_VOLATILE_ECC", 0),
        )  # ecc.errors.uncorrected.volatile.total
        gpu["ecc_uncorrected"] = int(ecc) if ecc is not None else None
        procs, reasons["processes"] = q("nvmlDeviceGetComputeRunningProcesses", handle)  # --query-compute-apps
        gpu["processes"] = None if procs is None else [self._process(p) for p in procs]
        gpu["xid_events"] = list(self._xids.get(index, ()))
        gpu["null_reasons"] = {k: v for k, v in reasons.items() if v is not None and gpu.get(k) is None}
        return {f: gpu.get(f) for f in GPU_FIELDS}

    @staticmethod
    def _process(proc: Any) -> Dict[str, Any]:
        used = getattr(proc, "usedGpuMemory", None)
        pid = int(proc.pid)
        return {
            "pid": pid,
            "used_memory_mib": round(used / 2**20, 1) if used is not None else None,
            "name": _process_name(pid),
        }


def node_sample(sampler: GpuSampler, count: int, backend: str, host: Dict[str, Any]) -> Dict[str, Any]:
    """A node sample: `{"time", "backend", "gpus", "host"}`; DriverUnavailable propagates."""
    sampler.watch_xids(count)
    sampler.drain_xids()
    gpus = [sampler.sample(index) for index in range(count)]
    return {"time": time.time(), "backend": backend, "gpus": gpus, "host": host}
