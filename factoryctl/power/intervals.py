"""How long each price row lasts, in a series whose interval may change (hourly, then 15-minute) or have holes.

Markets change resolution (EPEX day-ahead went from hourly to 15-minute intervals on 2025-10-01), so one file
may hold both, and a single "interval of the file" would weight a 15-minute row like an hour or an hour like 15
minutes. Each row therefore lasts until the next row, unless that spacing is a gap: longer than both the row's
own run (the interval of the rows just before it) and the spacing that follows, in which case the row lasts one
interval of its run and the rest is reported as missing intervals of that length. A spacing that repeats is an
interval length, not a gap (every other hour missing reads as a two-hour series); the last row lasts its run's
interval, and a lone row an hour.

The first and the last spacing have a neighbour on one side only, so one hourly row after 15-minute ones (or
before them) has nothing to repeat it: such an edge spacing is a change of resolution, not a gap, when it is one
of the `MARKET_INTERVALS_S` and starts on a multiple of it on the market's clock (`...00:45, 01:00, 02:00` ends
with an hourly row). The market's clock is UTC shifted by `utc_offset_s`, the offset its prices file writes times
in: India's hours start at :30 UTC (+05:30), so an hourly row there starts at 19:30 UTC, which a UTC boundary
would call a gap; whole-hour offsets (+01:00) move no boundary. An edge spacing that is no market interval or off
its boundary is still a gap (`...00:45, 02:00` misses four quarter hours; `...00:45, 01:45` three). Times alone
cannot tell `...01:00, 02:00` from a 15-minute row at 01:00 and three lost quarter hours before a last row at
02:00; a market that switched resolution is the likelier reading, and a file that goes on past 02:00 settles it by
the spacing that follows.

A row's length depends on the rows before it (its run, and through a run of gaps on rows further back) and on the
two after it, however far away in time, so a reader judges a row within the whole series, never within a window
of time around it: then `price show` and `price history` agree on every row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

#: The length of a series' only row, which has no neighbour to measure (the usual market interval).
LONE_ROW_S = 3600
#: Interval lengths markets settle in (5-minute real-time, 15-minute, half-hourly, hourly): an edge spacing of one
#: of these, on its boundary, is taken as a change of resolution rather than a hole (see the module docstring).
MARKET_INTERVALS_S = frozenset({300, 900, 1800, 3600})


@dataclass(frozen=True)
class RowIntervals:
    """Each row's own interval (seconds) and the holes in time: (start, end) with the run's interval length."""

    durations_s: tuple[int, ...]
    gaps: tuple[tuple[int, int, int], ...]

    @property
    def missing_intervals(self) -> int:
        """Intervals absent from the series, each gap counted in the interval of the rows before it."""
        return sum((end - start) // interval for start, end, interval in self.gaps)


def row_intervals(times: Sequence[int], utc_offset_s: int = 0) -> RowIntervals:
    """The interval of each row of strictly increasing `times` (epoch seconds), and the gaps between rows.

    `utc_offset_s` is the market's clock (the offset its file writes times in): edge spacings are judged on its
    boundaries.
    """
    steps = [b - a for a, b in itertools.pairwise(times)]
    if not steps:
        return RowIntervals((LONE_ROW_S,) * len(times), ())
    durations: list[int] = []
    gaps: list[tuple[int, int, int]] = []
    run: int | None = None
    for index, step in enumerate(steps):
        after = steps[index + 1] if index + 1 < len(steps) else None
        if _is_gap(times[index] + utc_offset_s, step, run, after):
            interval = next(s for s in (run, after) if s is not None)
            gaps.append((times[index] + interval, times[index + 1], interval))
        else:
            interval = step
        durations.append(interval)
        run = interval
    durations.append(durations[-1])
    return RowIntervals(tuple(durations), tuple(gaps))


def _is_gap(local_start: int, step: int, run: int | None, after: int | None) -> bool:
    """Whether the spacing `step` from a row is a hole, given the spacings around it (None: an edge).

    `local_start` is the row's start on the market's clock, where its intervals start on their multiples.
    """
    neighbours = [s for s in (run, after) if s is not None]
    if not neighbours or step <= max(neighbours):
        return False
    at_edge = run is None or after is None
    return not (at_edge and step in MARKET_INTERVALS_S and local_start % step == 0)


def rows_overlapping(times: Sequence[int], lasts: Sequence[int], start: float, end: int | None) -> list[int]:
    """The indices of the rows of `times`, lasting `lasts` (`row_intervals`), that overlap [start, end).

    `end` None: no end. `price history` lists these: the row in force at `start` first, as `price show --at start` shows it. `lasts`
    comes from the whole series, not a window around [start, end), so each row is judged from its real neighbours.
    """
    return [
        index
        for index, (at, last) in enumerate(zip(times, lasts, strict=True))
        if at + last > start and (end is None or at < end)
    ]


def price_interval_s(times: Sequence[int]) -> int:
    """The series' usual interval: the median spacing of `times` (`LONE_ROW_S` for a lone row or none)."""
    steps = [b - a for a, b in itertools.pairwise(times)]
    return int(median(steps)) if steps else LONE_ROW_S
