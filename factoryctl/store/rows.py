"""The store's records, and the narrow integer row a GPU sample becomes.

A raw row is one GPU at one instant, every value an integer at NVML's own resolution (mW, %, MHz, MiB, mJ, °C), so
SQLite packs it into 1 to 6 bytes per value; floats would cost 8. Temperatures, ECC counts, memory and the energy
counter are kept on the slow tier (every 5 s) and are NULL (zero bytes) in between; limits and names live once per
GPU in the `gpu` table.
No SQL here: the store's table modules (`factoryctl.store.connection`, `samples`, `history`, `nodes`, `logs`) own
every statement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

from factoryctl.model.telemetry import GPU_FIELDS, GpuSample, HostSample, NodeSample, surrogates_as_text
from factoryctl.model.timefmt import iso_utc


@dataclass(frozen=True)
class Metric:
    """A GPU field kept in the raw table: its column and how many stored units make one public unit."""

    name: str
    column: str
    scale: int
    rollup: bool


#: Public metric name -> how it is stored. Rolled-up metrics keep 1-minute min/mean/max for the long window.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("power_w", "power_mw", 1000, True),
        Metric("utilization_pct", "util_pct", 1, True),
        Metric("sm_clock_mhz", "sm_mhz", 1, True),
        Metric("memory_used_mib", "mem_mib", 1, True),
        Metric("temperature_c", "temp_c", 1, True),
        Metric("energy_j", "energy_mj", 1000, False),
        Metric("ecc_uncorrected", "ecc", 1, False),
    )
}
RAW_COLUMNS = tuple(m.column for m in METRICS.values())
ROLLUP_METRICS = tuple(m for m in METRICS.values() if m.rollup)
#: Stored on the slow tier only (every `controller.slow_interval_s`): they move slowly, or (energy) are counters.
SLOW_TIER = frozenset({"temperature_c", "ecc_uncorrected", "energy_j", "memory_used_mib"})

#: The per-GPU facts that change rarely: kept once per GPU, rewritten only when they change.
_ENCODING = tuple((m.name, m.scale, m.name in SLOW_TIER) for m in METRICS.values())

GPU_INFO_FIELDS = (
    "uuid",
    "name",
    "memory_total_mib",
    "power_limit_w",
    "power_limit_min_w",
    "power_limit_max_w",
    "power_limit_default_w",
    "temperature_slowdown_c",
)


def to_ms(seconds: float) -> int:
    """Unix seconds as the stored integer milliseconds (every `*_ms` column)."""
    return round(seconds * 1000)


def encode(value: float | int | None, scale: int) -> int | None:
    """A public value as the stored integer (None stays None)."""
    if value is None:
        return None
    return round(float(value) * scale)


def decode(value: int | float | None, scale: int) -> float | None:
    """A stored integer as the public value (a whole number stays one: utilization 91, not 91.0)."""
    if value is None:
        return None
    return float(value) / scale if scale != 1 else value


def gpu_values(gpu: GpuSample, slow: bool, reason_bits: dict[str, int]) -> tuple[int | None, ...]:
    """The raw row's value columns (RAW_COLUMNS order) plus the throttle bitmask, for one GPU."""
    values: list[int | None] = []
    for name, scale, slow_only in _ENCODING:
        value = getattr(gpu, name)
        values.append(None if value is None or (slow_only and not slow) else round(value * scale))
    mask = 0
    for reason in gpu.throttle_reasons:
        mask |= reason_bits.get(reason, 0)
    values.append(mask)
    return tuple(values)


def gpu_info(gpu: GpuSample) -> tuple[Any, ...]:
    """The GPU's slow-changing facts (GPU_INFO_FIELDS order); TypeError for a value SQLite cannot hold.

    SQLite's own refusal would be a StoreError, which the writer keeps and retries: one bad value would then hold
    back every sample of every node until the buffer drops them.
    """
    info = tuple(getattr(gpu, name) for name in GPU_INFO_FIELDS)
    for name, value in zip(GPU_INFO_FIELDS, info, strict=True):
        if value is not None and not isinstance(value, _SQL_TYPES):
            raise TypeError(f"{name} is a {type(value).__name__}")
    return info


_SQL_TYPES = (str, int, float)
_INT64 = range(-(2**63), 2**63)


def encoding_problem(sample: NodeSample) -> str | None:
    """Why `sample` cannot become rows (a value of the wrong type, NaN, out of range), or None when it can.

    The store writer asks only after a batch failed to encode, to find and drop the culprit: checking every sample
    up front would tax the controller's hot path for a fault the model's `from_json` already keeps off the wire.
    So it checks every value of the sample's rows, their key too: a GPU index of 10**19 (a sample made in code, which
    `from_json` never saw) went unfound, and the writer's retry failed on it every tick, for every node's samples.
    """
    problems = (TypeError, ValueError, OverflowError, AttributeError)
    for gpu in sample.gpus:
        if type(gpu.index) is not int or not -(2**63) <= gpu.index < 2**63:  # `in _INT64` would count up to a float
            return f"GPU {gpu.index!r:.40}: its index is out of range"
        try:
            values = gpu_values(gpu, True, {})
            for text in (*gpu_info(gpu), *gpu.throttle_reasons):  # kept as SQL text: a lone surrogate is refused
                if isinstance(text, str):
                    text.encode("utf-8")
        except problems as exc:
            return f"GPU {gpu.index}: {exc}"
        for column, value in zip((*RAW_COLUMNS, "throttle"), values, strict=True):
            if value is not None and value not in _INT64:
                return f"GPU {gpu.index}: {column} {value:.3g} is out of range"
    try:
        sample_to_json(sample)
    except problems as exc:
        return str(exc)
    return None


def reasons_from_mask(mask: int | None, bit_names: dict[int, str]) -> list[str]:
    """Throttle reason names from a stored bitmask."""
    if not mask:
        return []
    return [name for bit, name in sorted(bit_names.items()) if mask & bit]


# ---------------------------------------------------------------------------------------------------- latest


def sample_to_json(sample: NodeSample) -> str:
    """A node sample as the compact JSON kept in `node_latest` for `nodes list` / `gpus`."""
    doc = {
        "node": sample.node,
        "time": sample.time,
        "state": sample.state,
        "agent_version": sample.agent_version,
        "backend": sample.backend,
        "error": sample.error,
        "message": sample.message,
        "host": asdict(sample.host) if sample.host else None,
        "gpus": [_gpu_doc(g) for g in sample.gpus],
    }
    return json.dumps(doc, separators=(",", ":"), check_circular=False)


_PLAIN_GPU_FIELDS = tuple(f for f in GPU_FIELDS if f not in ("node", "processes"))


def _gpu_doc(gpu: GpuSample) -> dict[str, Any]:
    """A GPU's JSON object without `node` (the hot path of the controller: no dataclasses.fields per call)."""
    doc = {name: getattr(gpu, name) for name in _PLAIN_GPU_FIELDS}  # tuples encode as JSON arrays
    doc["processes"] = [vars(p) for p in gpu.processes]
    if gpu.xid_events:
        doc["xid_events"] = [vars(x) for x in gpu.xid_events]
    return doc


def sample_from_json(text: str) -> NodeSample:
    """The inverse of `sample_to_json`."""
    doc = json.loads(text)
    node = str(doc["node"])
    host = doc.get("host")
    gpus: list[GpuSample] = []
    for g in doc.get("gpus") or ():
        gpus.append(GpuSample.from_json(node, g))
    return NodeSample(
        node=node,
        time=float(doc["time"]),
        state=str(doc.get("state") or "up"),
        agent_version=doc.get("agent_version"),
        backend=doc.get("backend"),
        gpus=tuple(gpus),
        host=HostSample.from_json(host) if isinstance(host, dict) else None,
        error=doc.get("error"),
        message=doc.get("message"),
    )


# ---------------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class NodeState:
    """A node's reachability as the collector last judged it."""

    node: str
    state: str  # up | degraded | down
    since: float
    last_seen: float | None = None
    error: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class DrainInfo:
    """Why and since when a node is drained (the scheduler keeps off it)."""

    node: str
    reason: str | None
    since: float
    by: str | None


@dataclass(frozen=True)
class Event:
    """A health or state event: a node going down, an XID, an ECC error, a drain."""

    time: float
    kind: str
    message: str
    node: str | None = None
    gpu: int | None = None
    severity: str = "info"  # info | warning | error
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON item of `factoryctl events`."""
        return {
            "id": self.id,
            "time": iso_utc(self.time),
            "node": self.node,
            "gpu": self.gpu,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }


_Record = TypeVar("_Record", NodeState, Event)


def storable_texts(records: list[_Record]) -> list[_Record]:
    """`records` (a tick's state changes or events) with each lone surrogate in their texts written as text.

    The store writer's fallback when a batch failed to encode with no sample to blame: a message quoting a node that
    skipped `node_said` would otherwise fail the write of every node's changes and events, tick after tick.
    """
    return [replace(r, **_texts_as_stored(r)) for r in records]


def _texts_as_stored(record: NodeState | Event) -> dict[str, Any]:
    return {k: surrogates_as_text(v) for k, v in vars(record).items() if isinstance(v, str)}


#: The store's meta key under which a running controller writes its figures (controller status, the dashboard).
STATS_KEY = "controller_stats"
#: How often a running controller writes them, at least: written within twice that, they say it is alive.
STATS_EVERY_S = 10.0

#: An audit entry's outcome: the node answered, and `before_w` / `after_w` are its word.
CONFIRMED = "confirmed"
#: An audit entry's outcome: the request was written before the node was asked, and factoryctl never heard back (it
#: was killed, or the node did not answer in time): the limit may or may not have changed. So is a request whose
#: node has not answered yet, while its command still runs.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class AuditEntry:
    """One power-limit change on one GPU, with the value before and after; or a request whose outcome is unknown.

    An entry of `outcome` UNKNOWN has no before and after, and its `gpu` is None when it asked for every GPU of the
    node (which ones the node has was not known before it answered).
    """

    time: float
    node: str
    gpu: int | None
    action: str  # set | reset | policy
    before_w: float | None
    after_w: float | None
    clamped: bool = False
    user: str | None = None
    reason: str | None = None
    id: int | None = None
    requested_w: float | None = None  # the value asked (None: a reset, or an entry older than schema 3)
    outcome: str = CONFIRMED


@dataclass(frozen=True)
class Point:
    """One point of a history series; with a step, also the bucket's min and max."""

    time: float
    value: float | None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Series:
    """One GPU's history of one metric."""

    node: str
    gpu: int
    metric: str
    points: list[Point] = field(default_factory=list)


class ClockStep(NamedTuple):
    """A step of the controller's wall clock (NTP, the RTC) that retention allows for.

    A tuple, so the steps kept in the store's meta table (`[[at, seconds], ...]`) and the pairs older callers pass
    compare equal to it.
    """

    at: float  # when it stepped, in the clock's time before the step
    seconds: float  # how far it jumped: ahead when positive (the ones retention keeps), back when negative
