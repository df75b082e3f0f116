"""Telemetry snapshots: one `GpuSample` per GPU and one `NodeSample` per node, frozen so the UI can share them.

Field names are the JSON contract of `factoryctl gpus` / `nodes` (DESIGN.md, GPU and Node fields): SI units in the
name, `None` when the driver does not support a value, with the reason in `null_reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

GPU_FIELDS = (
    "node",
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
    "null_reasons",
)


@dataclass(frozen=True)
class GpuProcess:
    """A process using a GPU (`nvidia-smi --query-compute-apps=pid,used_memory`)."""

    pid: int
    used_memory_mib: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class XidEvent:
    """An XID error the driver reported for a GPU (`nvidia-smi -q` shows the latest; dmesg shows them all)."""

    xid: int
    time: float | None = None


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one instant. Each field's docstring names its `nvidia-smi --query-gpu` equivalent."""

    node: str
    index: int
    uuid: str | None = None  # uuid
    name: str | None = None  # name
    utilization_pct: float | None = None  # utilization.gpu
    memory_used_mib: float | None = None  # memory.used
    memory_total_mib: float | None = None  # memory.total
    power_w: float | None = None  # power.draw
    power_limit_w: float | None = None  # enforced.power.limit
    power_limit_min_w: float | None = None  # power.min_limit
    power_limit_max_w: float | None = None  # power.max_limit
    power_limit_default_w: float | None = None  # power.default_limit
    energy_j: float | None = None  # total_energy_consumption (mJ / 1000)
    temperature_c: float | None = None  # temperature.gpu
    temperature_slowdown_c: float | None = None  # temperature.gpu.tlimit (slowdown threshold)
    sm_clock_mhz: float | None = None  # clocks.sm
    throttle_reasons: tuple[str, ...] = ()  # clocks_event_reasons.*
    ecc_uncorrected: int | None = None  # ecc.errors.uncorrected.volatile.total
    processes: tuple[GpuProcess, ...] = ()
    null_reasons: dict[str, str] = field(default_factory=dict)
    xid_events: tuple[XidEvent, ...] = ()  # recent XIDs seen by the agent, oldest first (beyond DESIGN.md's fields)

    def as_json(self) -> dict[str, Any]:
        """The JSON object of one `gpus` listing item, keys in DESIGN.md order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "throttle_reasons":
                value = list(value)
            elif f.name in ("processes", "xid_events"):
                value = [vars(p).copy() for p in value]
            elif f.name == "null_reasons":
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, node: str, data: dict[str, Any]) -> GpuSample:
        """Build from the agent's wire form (unknown keys ignored, so agents may be newer)."""
        kwargs = {k: v for k, v in data.items() if k in _PLAIN_GPU_KEYS}
        kwargs["throttle_reasons"] = tuple(data.get("throttle_reasons") or ())
        kwargs["null_reasons"] = dict(data.get("null_reasons") or {})
        procs = tuple(
            GpuProcess(int(p["pid"]), p.get("used_memory_mib"), p.get("name")) for p in data.get("processes") or ()
        )
        xids = tuple(XidEvent(int(e["xid"]), e.get("time")) for e in data.get("xid_events") or () if "xid" in e)
        return cls(node=node, processes=procs, xid_events=xids, **kwargs)


#: Wire keys copied as they are (computed once: `from_json` runs for every GPU of every sample).
_PLAIN_GPU_KEYS = frozenset(f.name for f in fields(GpuSample)) - {"node", "processes", "xid_events"}


@dataclass(frozen=True)
class HostSample:
    """Host metrics from psutil (or /proc when psutil is absent)."""

    cpu_pct: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    load_1m: float | None = None


@dataclass(frozen=True)
class NodeSample:
    """One node at one instant: reachability, the agent that answered, and its GPUs."""

    node: str
    time: float  # unix seconds, UTC
    state: str = "up"  # up | degraded | down
    agent_version: str | None = None
    backend: str | None = None  # nvml | sim | smi
    gpus: tuple[GpuSample, ...] = ()
    host: HostSample | None = None
    error: str | None = None  # error kind when not up
    message: str | None = None

    @property
    def power_w(self) -> float | None:
        """Sum of the GPUs' power draw, or None when no GPU reports it."""
        values = [g.power_w for g in self.gpus if g.power_w is not None]
        return sum(values) if values else None

    @property
    def power_limit_w(self) -> float | None:
        """Sum of the GPUs' enforced power limits."""
        values = [g.power_limit_w for g in self.gpus if g.power_limit_w is not None]
        return sum(values) if values else None

    @property
    def hottest_temperature_c(self) -> float | None:
        """The hottest GPU's temperature."""
        values = [g.temperature_c for g in self.gpus if g.temperature_c is not None]
        return max(values) if values else None

    @property
    def healthy(self) -> bool:
        """No uncorrectable ECC error and no lost GPU reported."""
        if self.state == "down" or self.error is not None:
            return False
        return all(not g.ecc_uncorrected and "gpu_lost" not in g.null_reasons.values() for g in self.gpus)
