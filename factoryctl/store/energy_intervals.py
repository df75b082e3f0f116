"""Joules per GPU in each of many windows (a report's period and its price intervals), each GPU's rows read once.

`power report` prices a month interval by interval: `EnergyQueries.energy` per 15-minute interval was 2,880 reads
of every GPU, each a handful of queries (17 s for 64 GPUs over 30 days). Here each window is billed by the rules and
functions of `energy.py`, so each window's joules are those `energy(nodes, lo, hi)` gives, to the bit
(tests/power/test_power_report_fast.py), from one read of each GPU's rows for the whole span: its rollup minutes
summed by SQLite between the windows' edges (`energy_rolled`: exact, in mW x ms, so a month's minutes never cross
into Python), its raw rows and the few readings either side that a window's read looks at, each counter step billed
once for every window that holds it whole (`energy_steps`). What is left to the store: a seam's lead-in (one read
per GPU at most) and an empty window; and, for a GPU whose rollups were made before schema 4 (time covered
unknown), its minutes, billed window by window (`_Minutes`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from factoryctl.store.coverage import held_ms
from factoryctl.store.energy import (
    _CONTEXT,
    EnergyQueries,
    _covered_share,
    _held_joules,
    _in_counter_order,
    _prorated,
    minutes_joules,
)
from factoryctl.store.energy_rolled import rolled_microjoules
from factoryctl.store.energy_steps import CounterSteps
from factoryctl.store.rows import to_ms
from factoryctl.store.samples import PRUNED_BELOW

#: One window's joules and their source, as `EnergyQueries.energy` gives them ("none": no reading).
Billed = tuple[float, str]
#: Power readings read either side of the span: as many as `_raw_energy` looks at beyond a window's edge.
_POWER_CONTEXT = 2


def energy_by_interval(
    store: EnergyQueries,
    nodes: Sequence[str],
    windows: Sequence[tuple[float, float]],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[str, int, list[Billed]]]:
    """Per GPU of `nodes` the store knows (in `energy`'s order): (node, gpu, its joules and source per window).

    Each window's (joules, source) is what `store.energy(nodes, lo, hi)` gives for that GPU. `progress` is told
    (GPUs read, GPUs) before each GPU.
    """
    ids = store._known_node_ids(nodes)
    ever_pruned = store.get_meta(PRUNED_BELOW) is not None
    pairs = store._gpu_pairs()
    gpus = [(name, ids[name], gpu) for name in nodes if name in ids for node_id, gpu in pairs if node_id == ids[name]]
    bounds = [(to_ms(lo), to_ms(hi)) for lo, hi in windows]
    for done, (name, node_id, gpu) in enumerate(gpus):
        if progress is not None:
            progress(done, len(gpus))
        yield name, gpu, _GpuRows(store, node_id, gpu, ever_pruned).billed(bounds)


@dataclass
class _Rows:
    """Rows in time order and their times (ms, or minutes for rollups), for bisecting."""

    rows: list[Any]
    times: list[int]

    def before(self, edge: int, count: int) -> list[Any]:
        """The `count` rows before `edge`, in time order."""
        at = bisect.bisect_left(self.times, edge)
        return self.rows[max(0, at - count) : at]

    def between(self, lo: int, hi: int) -> list[Any]:
        """The rows in [lo, hi)."""
        return self.rows[bisect.bisect_left(self.times, lo) : bisect.bisect_left(self.times, hi)]

    def from_on(self, edge: int, count: int) -> list[Any]:
        """The `count` rows at or after `edge`."""
        at = bisect.bisect_left(self.times, edge)
        return self.rows[at : at + count]


def _rows(found: Sequence[Sequence[Any]]) -> _Rows:
    return _Rows(list(found), [int(row[0]) for row in found])


class _GpuRows:
    """One GPU's rows over a span of windows, and each window's joules billed from them as `energy.py` bills them."""

    def __init__(self, store: EnergyQueries, node_id: int, gpu: int, ever_pruned: bool) -> None:
        self.store, self.node_id, self.gpu, self.ever_pruned = store, node_id, gpu, ever_pruned
        self.key = (node_id, gpu)
        oldest = store._query("SELECT MIN(t_ms) FROM sample WHERE node_id = ? AND gpu = ?", self.key)[0][0]
        self.oldest: int | None = None if oldest is None else int(oldest)
        self.samples = self.counters = self.powers = _Rows([], [])
        self.steps: CounterSteps | None = None

    def billed(self, bounds: Sequence[tuple[int, int]]) -> list[Billed]:
        """Each window's (joules, source), as `EnergyQueries._gpu_energy` reads it (an empty window: by it)."""
        seams = [self._seam(start, end) for start, end in bounds]
        rolled = iter(self._rolled([(start, seam) for (start, _), (_, seam) in zip(bounds, seams, strict=True)]))
        raw = [(raw_from, end) for (_, end), (raw_from, _) in zip(bounds, seams, strict=True) if raw_from < end]
        if raw:
            self._load_samples(min(lo for lo, _ in raw), max(hi for _, hi in raw))
        return [
            self._energy(start, end, *seam, next(rolled) if start < seam[1] else None)
            if start < end
            else self._read(start, end)
            for (start, end), seam in zip(bounds, seams, strict=True)
        ]

    def _rolled(self, parts: Sequence[tuple[int, int]]) -> list[float | None]:
        """The rollups' joules of each non-empty (start, seam) of `parts`, summed in SQLite where it can be."""
        rolled = [(start, seam) for start, seam in parts if start < seam]
        if not rolled:
            return []
        summed = rolled_microjoules(self.store, self.key, rolled)
        if summed is not None:
            return [None if microjoules is None else microjoules / 1_000_000 for microjoules in summed]
        minutes = _load_minutes(self.store, self.key, min(lo for lo, _ in rolled), max(hi for _, hi in rolled))
        return [minutes.energy(start, seam) for start, seam in rolled]

    def _read(self, start: int, end: int) -> Billed:
        return self.store._gpu_energy(self.node_id, self.gpu, start, end, self.ever_pruned)

    def _seam(self, start: int, end: int) -> tuple[int, int]:
        """(raw_from, seam) of [start, end) ms, as `_gpu_energy` finds them: where raw rows and rollups take over."""
        raw_from = min(max(start, self.oldest), end) if self.oldest is not None else end
        return raw_from, raw_from // 60000 * 60000 if raw_from < end else raw_from

    def _energy(self, start: int, end: int, raw_from: int, seam: int, rolled: float | None) -> Billed:
        """`EnergyQueries._gpu_energy` from what was read: the rollups' `rolled`, the seam's lead-in, raw rows."""
        has_lead_in = self.ever_pruned and max(start, seam) < raw_from < end
        lead_in = self.store._lead_in(self.node_id, self.gpu, max(start, seam), raw_from) if has_lead_in else None
        # a window without raw rows reads none: (0.0, None), as `_raw_energy` finds then
        raw, source = self._raw_energy(raw_from, end, raw_from == start) if raw_from < end else (0.0, None)
        from_rollups = None if rolled is None and lead_in is None else (rolled or 0.0) + (lead_in or 0.0)
        sources = [name for name in ("rollup" if from_rollups is not None else None, source) if name is not None]
        return (from_rollups or 0.0) + raw, "+".join(sources) or "none"

    def _load_samples(self, start: int, end: int) -> None:
        """The raw rows of [start, end) ms, and the counter and power readings either side that windows read."""
        sample = "SELECT t_ms, energy_mj, power_mw FROM sample WHERE node_id = ? AND gpu = ?"
        self.samples = _rows(
            self.store._query(f"{sample} AND t_ms >= ? AND t_ms < ? ORDER BY t_ms", (*self.key, start, end))
        )
        counter, power = f"{sample} AND energy_mj IS NOT NULL", f"{sample} AND power_mw IS NOT NULL"
        edges = ((*self.key, start, _CONTEXT), (*self.key, end, _CONTEXT))
        self.counters = _rows(
            self.store._query(f"{counter} AND t_ms < ? ORDER BY t_ms DESC LIMIT ?", edges[0])[::-1]
            + [row for row in self.samples.rows if row[1] is not None]
            + self.store._query(f"{counter} AND t_ms >= ? ORDER BY t_ms LIMIT ?", edges[1])
        )
        self.steps = CounterSteps.of(self.counters.rows)
        edges = ((*self.key, start, _POWER_CONTEXT), (*self.key, end, _POWER_CONTEXT))
        self.powers = _rows(
            [
                (int(t), float(mw))
                for t, _, mw in (
                    self.store._query(f"{power} AND t_ms < ? ORDER BY t_ms DESC LIMIT ?", edges[0])[::-1]
                    + [row for row in self.samples.rows if row[2] is not None]
                    + self.store._query(f"{power} AND t_ms >= ? ORDER BY t_ms LIMIT ?", edges[1])
                )
            ]
        )

    def _raw_energy(self, start: int, end: int, edge_before: bool) -> tuple[float, str | None]:
        """`EnergyQueries._raw_energy` of [start, end) ms from the rows read."""
        found = self.samples.between(start, end)
        counters = [(t, e, p) for t, e, p in found if e is not None]
        powers = [(int(t), float(p)) for t, _, p in found if p is not None]
        if len(counters) >= 2:
            return self._counter_joules(counters, start if edge_before else None, end), "counter"
        around = 1 if len(powers) >= 2 else 2
        before = self.powers.before(start, around) if edge_before else []
        after = self.powers.from_on(end, around)
        held = None
        if len(powers) >= 2 or (len(before + powers + after) >= 2 and (before or powers) and (powers or after)):
            held = _held_joules(before + powers + after, start, end, floor_ms=1, hold_last=False)
        return (0.0, None) if held is None else (held, "power")

    def _counter_joules(self, inside: Sequence[tuple[int, int, int | None]], start: int | None, end: int) -> float:
        """`EnergyQueries._counter_joules` from the counter readings read (`_CONTEXT` either side of the window)."""
        lo = start if start is not None else int(inside[0][0])
        if self.steps is not None:  # the readings in order: each step held whole was billed once (`CounterSteps`)
            first = bisect.bisect_left(self.counters.times, int(inside[0][0]))
            return self.steps.millijoules(first, first + len(inside) - 1, lo, end) / 1000
        before = self.counters.before(int(inside[0][0]), _CONTEXT)
        after = self.counters.from_on(end, _CONTEXT)
        readings = _in_counter_order([*before, *inside, *after])
        gaps = [int(b[0]) - int(a[0]) for a, b in itertools.pairwise(readings)]
        joules = 0.0
        for index, (a, b) in enumerate(itertools.pairwise(readings)):
            around = gaps[index - 1] if index else None, gaps[index + 1] if index + 1 < len(gaps) else None
            joules += _prorated(a, b, lo, end, held_ms(gaps[index], *around))
        return joules / 1000


@dataclass
class _Minutes:
    """One GPU's minutes with power as `_rollup_energy` reads them: start (ms), mW held, time covered (None: unknown).

    For the GPUs `rolled_microjoules` does not sum (a rollup made before schema 4): each window is billed from them.
    """

    starts: list[int]
    mws: list[float]
    covers: list[int | None]

    def energy(self, start: int, stop: int) -> float | None:
        """`EnergyQueries._rollup_energy` of [start, stop) ms: the minute before the window's first, then its own."""
        at = bisect.bisect_left(self.starts, -(-start // 60000) * 60000)
        lo, hi = max(0, at - 1), bisect.bisect_left(self.starts, -(-stop // 60000) * 60000)
        if hi <= lo:
            return None
        held = list(zip(self.starts[lo:hi], self.mws[lo:hi], strict=True))
        return minutes_joules(held, self.covers[lo:hi], start, stop)


def _load_minutes(store: EnergyQueries, key: tuple[int, int], start: int, stop: int) -> _Minutes:
    """The GPU's minutes with power `_rollup_energy` reads for windows in [start, stop) ms, as it reads them.

    Each minute's time covered, and only where one is not (a rollup before schema 4) the sample counts that
    `_covered_share` infers it from: the same rows, the mean power held as `_rollup_energy` holds it.
    """
    bounds = (-(-start // 60000), -(-stop // 60000))
    if store.schema_version >= 4:
        lean = _minutes_between(
            store,
            "SELECT t_min, power_mw_mean, power_covered_ms FROM rollup WHERE node_id = ? AND gpu = ?"
            " AND power_mw_mean IS NOT NULL",
            key,
            bounds,
        )
        minutes, mws, covers = (list(column) for column in zip(*lean, strict=True)) if lean else ([], [], [])
        if None not in covers:
            return _Minutes([int(t) * 60_000 for t in minutes], list(map(float, mws)), list(map(int, covers)))
    found = _minutes_between(store, store._minutes_with_power, key, bounds)
    return _Minutes(
        [int(t) * 60_000 for t, *_ in found],
        [
            float(mw) * (1.0 if covered is not None else _covered_share(n, *around))
            for _, mw, covered, n, *around in found
        ],
        [None if covered is None else int(covered) for _, _, covered, *_ in found],
    )


def _minutes_between(
    store: EnergyQueries, query: str, key: tuple[int, int], bounds: tuple[int, int]
) -> list[tuple[Any, ...]]:
    """`query`'s minutes in [first, last) of `bounds`, after the last minute before the first (its power holds)."""
    found = store._query(f"{query} AND t_min < ? ORDER BY t_min DESC LIMIT 1", (*key, bounds[0]))
    return found + store._query(f"{query} AND t_min >= ? AND t_min < ? ORDER BY t_min", (*key, *bounds))
