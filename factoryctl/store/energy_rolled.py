"""The joules rollups bill one GPU in many windows, their minutes summed by SQLite rather than read into Python.

A month's `power report` of a few hundred nodes bills every rollup minute of every GPU (88 million for 256 nodes
x 8): reading each GPU's 43,200 minutes into Python to bill them took minutes. Where every minute's time covered is
known (rollups of schema 4 on), `energy.py` bills rollups exactly, in integer mW x ms (`held_microjoules`), so a
window's microjoules are the sum of its pieces', whatever the pieces. Here SQLite sums the minutes between the
windows' edges (`SUM(power_mw_mean * power_covered_ms)`, grouped by piece: a month of 15-minute prices is one query
per GPU), and Python adds the pieces, the minute a window's edge cuts, and the few minutes held past their own
minute (a cron sweep's, every 5 minutes), each read with the minute after it. So each window's joules are, to the
bit, those `EnergyQueries._rollup_energy` gives. A GPU with a minute whose time covered is unknown (a rollup made
before schema 4) or whose mean power is not a whole number of milliwatts is not summed here: the caller bills its
rows as `_rollup_energy` does (`energy_intervals._Minutes`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factoryctl.store.energy import EnergyQueries

MINUTE_MS = 60_000
#: A minute held within itself: its mean power a whole number of mW, its time covered known and at most the minute
#: (at most 10 kW, `MAX_POWER_W`, for 60 s: a piece's sum stays far inside SQLite's 64-bit integers).
_OWN_MINUTE = "typeof(power_mw_mean) = 'integer' AND power_covered_ms BETWEEN 0 AND 60000"
#: The sum of an expression over the minutes held within their own minute.
_OWN_SUM = f"SUM(CASE WHEN {_OWN_MINUTE} THEN {{}} END)"
_GPU = "FROM rollup r WHERE node_id = ? AND gpu = ? AND power_mw_mean IS NOT NULL"
#: The minutes held otherwise (past their minute, or not known), each with the next minute with power.
_HELD_OTHERWISE = (
    "SELECT t_min, power_mw_mean, power_covered_ms, (SELECT o.t_min FROM rollup o WHERE o.node_id = r.node_id"
    " AND o.gpu = r.gpu AND o.t_min > r.t_min AND o.power_mw_mean IS NOT NULL ORDER BY o.t_min LIMIT 1)"
    f" {_GPU}"
)


def rolled_microjoules(
    store: EnergyQueries, key: tuple[int, int], windows: Sequence[tuple[int, int]]
) -> list[int | None] | None:
    """Each window's microjoules from the rollups of GPU `key`, as `_rollup_energy` bills it; None: not summable here.

    `windows`: (start, stop) ms, none empty. A window's None: no minute's time covered falls inside it (no minute
    with power before its end, or every one held before its start: no reading there, which is not 0 J).
    """
    if store.schema_version < 4:
        return None
    first = store._query(f"SELECT MIN(t_min) {_GPU}", key)[0][0]
    if first is None or not windows:
        return [None] * len(windows)
    edges = sorted({edge for window in windows for edge in window})
    own = _OwnMinutes(store, key, edges)
    first_minute = edges[0] // MINUTE_MS  # the minutes held otherwise: looked for only where SQLite counted some
    held = _held_otherwise(store, key, first_minute, first_minute if own.others else own.minutes[-1], edges[-1])
    if held is None:
        return None
    before = {edge: own.before(edge) + held.before(edge)[0] for edge in edges}
    summed = [before[hi] - before[lo] if first < -(-hi // MINUTE_MS) else None for lo, hi in windows]
    # a window of 0 µJ may have no minute held into it (after the GPU's last, or in a silence): its time held says
    # (looked for only then: SQLite sums the minutes' time a second time)
    return [
        None if microjoules == 0 and not own.held_between(lo, hi) + held.held_between(lo, hi) else microjoules
        for microjoules, (lo, hi) in zip(summed, windows, strict=True)
    ]


class _HeldSpans:
    """Minutes held other than within their own minute: their spans [start, end) ms and mW, in time order."""

    def __init__(self, spans: list[tuple[int, int, int]]) -> None:
        self.starts = [start for start, _, _ in spans]
        self.spans = spans
        self.whole = list(itertools.accumulate(((end - start) * mw for start, end, mw in spans), initial=0))
        self.held = list(itertools.accumulate((end - start for start, end, _ in spans), initial=0))

    def held_between(self, lo: int, hi: int) -> int:
        """Their ms held in [lo, hi) ms."""
        return self.before(hi)[1] - self.before(lo)[1]

    def before(self, edge: int) -> tuple[int, int]:
        """Their (microjoules, ms held) before `edge` (ms)."""
        at = bisect.bisect_left(self.starts, edge)
        if not at:
            return 0, 0
        start, end, mw = self.spans[at - 1]
        part = min(end, edge) - start
        return self.whole[at - 1] + part * mw, self.held[at - 1] + part


def _held_otherwise(
    store: EnergyQueries, key: tuple[int, int], first: int, scan_from: int, last_ms: int
) -> _HeldSpans | None:
    """The GPU's last minute before `first`, and its minutes from `scan_from` to `last_ms` held otherwise.

    None when one of them has no time covered or a fractional mean: not billed in integers (`_rollup_energy`).
    """
    found = store._query(f"{_HELD_OTHERWISE} AND t_min < ? ORDER BY t_min DESC LIMIT 1", (*key, first))
    found += store._query(
        f"{_HELD_OTHERWISE} AND t_min >= ? AND t_min < ? AND NOT COALESCE({_OWN_MINUTE}, 0) ORDER BY t_min",
        (*key, scan_from, -(-last_ms // MINUTE_MS)),
    )
    spans = []
    for minute, mw, covered, following in found:
        if covered is None or not float(mw).is_integer():
            return None
        start = int(minute) * MINUTE_MS
        # up to the next minute at most; the last, up to the window's end: the same, as the window ends before it
        end = start + (int(covered) if following is None else min(int(covered), int(following) * MINUTE_MS - start))
        spans.append((start, max(start, end), int(mw)))
    return _HeldSpans(spans)


class _OwnMinutes:
    """The microjoules of the GPU's minutes held within their own minute, before each of the windows' edges.

    SQLite sums the minutes between consecutive edges' minutes, one query for each run of evenly spaced edges (a
    month of 15-minute prices: one or a few), and counts the minutes there held otherwise (`others`); the minute an
    edge cuts adds its part before the edge. Their time held is summed the same way, when first asked for.
    """

    def __init__(self, store: EnergyQueries, key: tuple[int, int], edges: Sequence[int]) -> None:
        self.store, self.key = store, key
        self.minutes = sorted({edge // MINUTE_MS for edge in edges})
        counted = self._pieces(
            _OWN_SUM.format("power_mw_mean * power_covered_ms"), f"SUM(NOT COALESCE({_OWN_MINUTE}, 0))"
        )
        self.others = sum(int(others) for *_, others in counted)
        self.upto = self._upto(counted)  # those of [minutes[0], minutes[i])
        self.held: list[int] | None = None  # the same of their time held, once asked for
        cut = [edge // MINUTE_MS for edge in edges if edge % MINUTE_MS]
        self.cut: dict[int, tuple[int, int]] = {}
        for at in range(0, len(cut), 500):  # SQLite's variables: a few hundred at a time
            chunk = cut[at : at + 500]
            self.cut.update(
                (int(minute), (int(mw), int(covered)))
                for minute, mw, covered in store._query(
                    f"SELECT t_min, power_mw_mean, power_covered_ms {_GPU} AND {_OWN_MINUTE}"
                    f" AND t_min IN ({', '.join('?' * len(chunk))})",
                    (*key, *chunk),
                )
            )

    def _pieces(self, *sums: str) -> list[tuple[int, ...]]:
        """(piece, each of `sums`) of the minutes between consecutive edges' minutes: SQLite's sums, piece by piece."""
        minutes, found = self.minutes, []
        for first, step, count in _even_runs(minutes):
            found += [
                (first + int(piece), *rest)
                for piece, *rest in self.store._query(
                    f"SELECT (t_min - ?) / ?, {', '.join(sums)} {_GPU} AND t_min >= ? AND t_min < ? GROUP BY 1",
                    (minutes[first], step, *self.key, minutes[first], minutes[first + count]),
                )
            ]
        return found

    def _upto(self, pieces: Sequence[tuple[int, ...]]) -> list[int]:
        """Each edge's minute's sum of the `pieces` before it, from the first edge's minute."""
        sums = [0] * len(self.minutes)
        for piece, value, *_ in pieces:
            sums[piece] = int(value or 0)
        return list(itertools.accumulate(sums[:-1], initial=0))

    def before(self, edge: int) -> int:
        """Their microjoules from the first edge's minute to `edge` (ms), one of the edges."""
        return self._before(edge, self.upto, by_mw=True)

    def held_between(self, lo: int, hi: int) -> int:
        """Their ms held in [lo, hi) ms (two of the edges)."""
        if self.held is None:
            self.held = self._upto(self._pieces(_OWN_SUM.format("power_covered_ms")))
        return self._before(hi, self.held, by_mw=False) - self._before(lo, self.held, by_mw=False)

    def _before(self, edge: int, upto: Sequence[int], by_mw: bool) -> int:
        """`upto`'s sum before `edge`'s minute, and the part before `edge` of the minute it cuts (times its mW)."""
        minute = edge // MINUTE_MS
        total = upto[bisect.bisect_left(self.minutes, minute)]
        if minute in self.cut:
            mw, covered = self.cut[minute]
            total += min(covered, edge - minute * MINUTE_MS) * (mw if by_mw else 1)
        return total


def _even_runs(points: Sequence[int]) -> list[tuple[int, int, int]]:
    """`points` (ascending) as runs of evenly spaced points: (index of the first, the spacing, pieces)."""
    runs: list[tuple[int, int, int]] = []
    at = 0
    while at + 1 < len(points):
        step = points[at + 1] - points[at]
        count = 1
        while at + count + 1 < len(points) and points[at + count + 1] - points[at + count] == step:
            count += 1
        runs.append((at, step, count))
        at += count
    return runs
