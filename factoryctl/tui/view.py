"""What the screens show, computed from a `FactorySnapshot`: the header's totals and the node table's rows.

Pure functions of frozen data (no Textual, no IO), so sorting, filtering and the header's arithmetic are unit-tested
on their own and the widgets only draw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factoryctl.live.services import FactorySnapshot, JobLine, LateController, PriceNow
from factoryctl.model.telemetry import GpuSample, NodeSample

#: A GPU counts as busy at or above this utilization, or while it runs a process.
BUSY_UTILIZATION_PCT = 5.0

_STATE_ORDER = {"down": 0, "degraded": 1, "stale": 2, "connecting": 3, "up": 4}


def gpu_busy(gpu: GpuSample) -> bool:
    """Whether a GPU is doing work (utilization at or above `BUSY_UTILIZATION_PCT`, or a process on it)."""
    return bool(gpu.processes) or (gpu.utilization_pct or 0.0) >= BUSY_UTILIZATION_PCT


@dataclass(frozen=True)
class FactorySummary:
    """The header's numbers."""

    factory: str
    nodes: int
    up: int
    degraded: int
    down: int
    drained: int
    unhealthy: int
    gpus_busy: int
    gpus_total: int
    power_kw: float | None
    power_limit_kw: float | None
    budget_kw: float | None
    energy_per_hour_kwh: float | None  # mean factory power over (at most) the last hour, as kWh per hour
    history_minutes: float
    last_sample: float | None  # newest node sample time
    price: PriceNow | None = None
    cost_per_hour: float | None = None
    queue_length: int | None = None
    price_error: str | None = None  # the price source failed (a bad file, a plugin's error): `n/a (error)`
    connecting: int = 0  # nodes that have not answered yet (the embedded collector just started)
    #: Nodes whose rows a late controller left old: not known now, so neither up nor down (their last values count).
    stale: int = 0
    #: The controller whose store is shown is late (holds its lock, stores nothing): the header names it, and
    #: `last_sample` is then its last write, so the data's age stays shown when its rows have all gone down.
    late_controller: LateController | None = None
    #: factoryctl's files changed under this dashboard (`FactorySnapshot.code_changed`): the header leads with it.
    code_changed: str | None = None


def summarize(snapshot: FactorySnapshot) -> FactorySummary:
    """Count states and add up power for the header."""
    states = {"up": 0, "degraded": 0, "down": 0, "connecting": 0, "stale": 0}
    power: list[float] = []
    limits: list[float] = []
    busy = total = unhealthy = 0
    times: list[float] = []
    for sample in snapshot.nodes:
        states[sample.state] = states.get(sample.state, 0) + 1
        if not sample.healthy:
            unhealthy += 1
        if sample.state not in ("down", "connecting"):  # a connecting node's time is only when we asked
            times.append(sample.time)
        busy += sum(1 for gpu in sample.gpus if gpu_busy(gpu))
        total += max(len(sample.gpus), snapshot.gpu_counts.get(sample.node, 0))  # a down node's GPUs still exist
        if sample.power_w is not None and sample.state != "down":
            power.append(sample.power_w)
        if sample.power_limit_w is not None and sample.state != "down":
            limits.append(sample.power_limit_w)
    late = snapshot.late_controller
    last_sample = late.stored_at if late is not None else max(times, default=None)
    history = snapshot.power_history_w[-max(1, round(3600 / snapshot.interval_s)) :]
    return FactorySummary(
        factory=snapshot.factory,
        nodes=len(snapshot.nodes),
        up=states["up"],
        degraded=states["degraded"],
        down=states["down"],
        connecting=states["connecting"],
        stale=states["stale"],
        drained=sum(1 for sample in snapshot.nodes if sample.node in snapshot.drained),  # only the shown nodes
        unhealthy=unhealthy,
        gpus_busy=busy,
        gpus_total=total,
        power_kw=sum(power) / 1000 if power else None,
        power_limit_kw=sum(limits) / 1000 if limits else None,
        budget_kw=snapshot.budget_kw,
        energy_per_hour_kwh=sum(history) / len(history) / 1000 if history else None,
        history_minutes=len(history) * snapshot.interval_s / 60,
        last_sample=last_sample,
        price=snapshot.price,
        cost_per_hour=snapshot.cost_per_hour,
        queue_length=snapshot.queue_length,
        price_error=snapshot.price_error,
        late_controller=late,
        code_changed=snapshot.code_changed,
    )


@dataclass(frozen=True)
class NodeRow:
    """One row of the node table: the node's sample plus what the inventory and the scheduler say about it."""

    sample: NodeSample
    rack: str | None
    drained: bool

    @property
    def name(self) -> str:
        """The node's name (the row's key)."""
        return self.sample.node

    @property
    def mean_utilization_pct(self) -> float | None:
        """Mean GPU utilization of the node."""
        values = [g.utilization_pct for g in self.sample.gpus if g.utilization_pct is not None]
        return sum(values) / len(values) if values else None


def node_rows(snapshot: FactorySnapshot) -> list[NodeRow]:
    """One row per node, in inventory order."""
    return [NodeRow(s, snapshot.racks.get(s.node), s.node in snapshot.drained) for s in snapshot.nodes]


def natural_key(name: str) -> tuple[object, ...]:
    """Sort `gpu2` before `gpu10`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _num(value: float | None) -> float:
    return float("-inf") if value is None else value


#: Sortable columns: key -> (title, sort key). Every column of the table is sortable.
SORT_KEYS: dict[str, tuple[str, Callable[[NodeRow], object]]] = {
    "node": ("Node", lambda r: natural_key(r.name)),
    "state": ("State", lambda r: (_STATE_ORDER.get(r.sample.state, -1), natural_key(r.name))),
    "util": ("Util", lambda r: _num(r.mean_utilization_pct)),
    "power": ("Power kW", lambda r: _num(r.sample.power_w)),
    "temp": ("Temp °C", lambda r: _num(r.sample.hottest_temperature_c)),
    "flags": ("Flags", lambda r: (not r.drained, r.sample.healthy, natural_key(r.name))),
    "rack": ("Rack", lambda r: (r.rack or "", natural_key(r.name))),
}
SORT_ORDER: tuple[str, ...] = tuple(SORT_KEYS)


def sort_rows(rows: Sequence[NodeRow], column: str, reverse: bool = False) -> list[NodeRow]:
    """Rows sorted by one column (stable; ties keep inventory order)."""
    key = SORT_KEYS[column][1]
    return sorted(rows, key=key, reverse=reverse)  # type: ignore[arg-type]


_NODESET_CHARS = re.compile(r"[\[\],!&^@]")


@dataclass(frozen=True)
class FilterResult:
    """The rows a filter keeps and, when it is a node set that names no node, why: the CLI's sentence and hint."""

    rows: list[NodeRow]
    problem: str | None = None


def filter_nodes(rows: Sequence[NodeRow], text: str, groups: dict[str, tuple[str, ...]] | None = None) -> FilterResult:
    """Rows matching a filter, and what is wrong with it (as `factoryctl` would say for the same TARGET).

    The filter is a node set (`demo[01-04]`, `@rack-a`, `a,b`), resolved by the CLI's own resolver
    (factoryctl/targets.py), so `@nosuch` says "unknown group `@nosuch`. did you mean …" instead of silently
    showing no node; or words that must all appear in the node's name, rack, state or flags (`down`, `drained`,
    `unhealthy`; a state or flag only as a whole word), where `rack b` means the rack named `b` (not a `b` anywhere,
    such as in the name `b01`).
    """
    text = text.strip()
    if not text:
        return FilterResult(list(rows))
    if _NODESET_CHARS.search(text):
        from factoryctl.errors import UsageError
        from factoryctl.targets import resolve_node_names

        try:
            members = set(resolve_node_names(text, [r.name for r in rows], groups or {}))
        except UsageError as exc:
            return FilterResult([], f"{exc.message} {exc.hint}" if exc.hint else exc.message)
        return FilterResult([r for r in rows if r.name in members])
    words = text.lower().split()
    racks: list[str] = []
    while "rack" in words[:-1]:  # `rack b`: the rack's name, whole (a trailing `rack` is still being typed)
        at = words.index("rack")
        racks.append(words.pop(at + 1))
        words.pop(at)
    return FilterResult(
        [r for r in rows if all((r.rack or "").lower() == rack for rack in racks) and _has_words(r, words)]
    )


#: The states and flags, which a filter word matches only whole: `healthy` is no match for `unhealthy` (nor `down`
#: for `shutdown` in an error); any other word matches part of a word, as typed so far (`demo0`, `heal`).
WHOLE_WORDS = frozenset({"up", "down", "degraded", "connecting", "stale", "drained", "healthy", "unhealthy"})


def _has_words(row: NodeRow, words: Sequence[str]) -> bool:
    """Whether every word appears in the row's name, rack, state, flags or error (`WHOLE_WORDS` as whole words)."""
    flags = ("drained" if row.drained else "") + (" healthy" if row.sample.healthy else " unhealthy")
    haystack = f"{row.name} rack {row.rack or ''} {row.sample.state} {flags} {row.sample.error or ''}".lower()
    whole = set(re.findall(r"\w+", haystack))
    return all((w in whole) if w in WHOLE_WORDS else (w in haystack) for w in words)


def jobs_summary(
    jobs: tuple[JobLine, ...] | None, running: int | None = None, waiting: int | None = None
) -> str | None:
    """`3 running, 5 waiting` for the jobs panel's title, or None with no scheduler data.

    Running counts RUNNING and STARTING jobs; waiting counts PENDING and DEFERRED ones: `running` and `waiting` when
    given (the snapshot's counts of every job: its lines hold the first few of a long queue), else the lines.
    """
    if jobs is None:
        return None
    if running is None:
        running = sum(1 for j in jobs if j.state in ("RUNNING", "STARTING"))
    if waiting is None:
        waiting = sum(1 for j in jobs if j.state in ("PENDING", "DEFERRED"))
    return f"{running:,} running, {waiting:,} waiting"
