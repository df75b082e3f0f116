"""A GPU's energy-counter steps billed once each, for the many windows of a report that hold them whole.

`EnergyQueries._counter_joules` bills a window step by step (`_prorated`, each step's time held judged by the gaps
next to it): a report's period and each of its price intervals read the raw window's steps again (4,320 a GPU for
6 hours of 5 s samples, twice, each a few microseconds of Python). A step the window holds whole is billed the same
in every window (its time held, all inside), so it is worked out once here, and a window adds its steps in the
order `_counter_joules` adds them: the step across its start, those it holds whole, the step across its end (the
steps around them bill nothing in it). So each window's joules are the same, to the bit. Only for a GPU whose
counter readings are in order: a reading out of place is judged within each window (`_in_counter_order`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Sequence
from typing import Any

from factoryctl.store.coverage import held_ms
from factoryctl.store.energy import _prorated


class CounterSteps:
    """The steps between consecutive counter readings (time ms, millijoules, milliwatts or None), in time order."""

    def __init__(self, readings: Sequence[Sequence[Any]]) -> None:
        self.readings = readings
        gaps = [int(b[0]) - int(a[0]) for a, b in itertools.pairwise(readings)]
        self.held = [
            held_ms(gap, gaps[index - 1] if index else None, gaps[index + 1] if index + 1 < len(gaps) else None)
            for index, gap in enumerate(gaps)
        ]
        #: where each step's time held ends: never decreasing, as a step is held no longer than its gap
        self.reach = [int(a[0]) + held for a, held in zip(readings, self.held, strict=False)]
        self.whole = [
            _prorated(a, b, int(a[0]), reach, held)
            for (a, b), reach, held in zip(itertools.pairwise(readings), self.reach, self.held, strict=True)
        ]

    @staticmethod
    def of(readings: Sequence[Sequence[Any]]) -> CounterSteps | None:
        """The steps of `readings`; None when a counter reading is below the one before (a reboot, a clock step)."""
        if any(int(a[1]) > int(b[1]) for a, b in itertools.pairwise(readings)):
            return None
        return CounterSteps(readings)

    def millijoules(self, first: int, last: int, lo: int, end: int) -> float:
        """The millijoules `_counter_joules` bills in [lo, end) ms, its readings inside `readings[first:last + 1]`.

        `lo`: the window's start, or its first reading's time when the step before it is not the window's.
        """
        joules = 0.0
        if first:  # the step into the window (or, without the edge before, one ending at its first reading: 0)
            joules += _prorated(self.readings[first - 1], self.readings[first], lo, end, self.held[first - 1])
        across = bisect.bisect_right(self.reach, end, lo=first)  # the first step held past the end
        joules = functools.reduce(operator.add, self.whole[first:across], joules)
        if across <= last and across < len(self.whole):  # a step from a reading inside held past the end: its part
            joules += _prorated(self.readings[across], self.readings[across + 1], lo, end, self.held[across])
        return joules
