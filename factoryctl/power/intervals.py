"""How long each price row lasts, in a series whose interval may change (hourly, then 15-minute) or have holes.

Markets change resolution (EPEX day-ahead went from hourly to 15-minute intervals on 2025-10-01), so one file
may hold both, and a single "interval of the file" would weight a 15-minute row like an hour or an hour like 15
minutes. Each row therefore lasts until the next row, unless that spacing is a gap: longer than both the row's
own run (the interval of the rows just before it) and the spacing that follows, in which case the row lasts one
interval of its run and the rest is reported as missing intervals of that length. A spacing that repeats is an
interval length, not a gap (every other hour missing reads as a two-hour series); the last row lasts its run's
interval, and a lone row an hour.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

#: The length of a series' only row, which has no neighbour to measure (the usual market interval).
LONE_ROW_S = 3600


@dataclass(frozen=True)
class RowIntervals:
    """Each row's own interval (seconds) and the holes in time: (start, end) with the run's interval length."""

    durations_s: tuple[int, ...]
    gaps: tuple[tuple[int, int, int], ...]

    @property
    def missing_intervals(self) -> int:
        """Intervals absent from the series, each gap counted in the interval of the rows before it."""
        return sum((end - start) // interval for start, end, interval in self.gaps)


def row_intervals(times: Sequence[int]) -> RowIntervals:
    """The interval of each row of strictly increasing `times` (epoch seconds), and the gaps between rows."""
    steps = [b - a for a, b in itertools.pairwise(times)]
    if not steps:
        return RowIntervals((LONE_ROW_S,) * len(times), ())
    durations: list[int] = []
    gaps: list[tuple[int, int, int]] = []
    run: int | None = None
    for index, step in enumerate(steps):
        after = steps[index + 1] if index + 1 < len(steps) else None
        neighbours = [s for s in (run, after) if s is not None]
        if neighbours and step > max(neighbours):
            interval = run if run is not None else neighbours[0]
            gaps.append((times[index] + interval, times[index + 1], interval))
        else:
            interval = step
        durations.append(interval)
        run = interval
    durations.append(durations[-1])
    return RowIntervals(tuple(durations), tuple(gaps))


def price_interval_s(times: Sequence[int]) -> int:
    """The series' usual interval: the median spacing of `times` (`LONE_ROW_S` for a lone row or none)."""
    steps = [b - a for a, b in itertools.pairwise(times)]
    return int(median(steps)) if steps else LONE_ROW_S
