"""When a stream's samples are due: on wall-clock multiples of the interval, waited for on the monotonic clock.

Every agent takes its streamed samples at the same wall-clock instants (multiples of the interval since the Unix
epoch, so any interval works, not only those that divide a day or a minute): the samples of different nodes are taken
together, so fleet sums (the dashboard's total power, the power policy's) add values of one moment, and the
controller spends less CPU per sample when they arrive together (benchmarks/README.md, Session 10). The wait runs on
the monotonic clock, and the wall clock only says where the grid is: a step of the wall clock (NTP, a VM resumed)
makes the schedule re-align to a grid instant between half and one and a half intervals after the last sample, so
a stream neither stalls nor bursts. Pure functions: the stream loop (factoryctl.agent.server) passes the clocks, or
their readings, in.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

from factoryctl.agent.sampler import slow_max_age

#: How far (seconds) the monotonic schedule may sit off the wall-clock grid before it is re-aligned (at most a tenth
#: of the interval): reading two clocks one after the other is never exact, and re-aligning for that would jitter.
ALIGN_TOLERANCE_S = 0.01


def next_aligned(wall_now: float, interval: float) -> float:
    """Seconds from `wall_now` to the next wall-clock multiple of `interval` (since the epoch): in (0, interval].

    A `wall_now` on a multiple gives a whole interval, so a sample taken on the grid is never taken twice.
    """
    delay = (-wall_now) % interval  # in [0, interval]: the float remainder of a tiny negative may round up to it
    return delay if delay > 0 else interval


def next_due(due: float, mono_now: float, wall_now: float, interval: float, spread: float = 0.0) -> float:
    """The monotonic time the sample after the one due at `due` is due, read at `mono_now` / `wall_now`.

    One interval after `due` while that lies ahead and on the wall-clock grid (within ALIGN_TOLERANCE_S, or a tenth of
    the interval when smaller). Otherwise (after the first sample, which is taken at once; after a step of the wall
    clock; when the stream fell behind, its missed samples skipped) the first grid instant at least half an interval
    after `due` and after `mono_now`: never two samples close together (counters that have not moved, rates over
    nothing), never a wait of more than one and a half intervals. `spread` is how far apart the two clocks were read
    (a thread preempted in between): past the tolerance the reading cannot place the grid, so a schedule that lies
    ahead is kept rather than moved to a wrong instant and back.
    """
    tolerance = min(ALIGN_TOLERANCE_S, interval / 10.0)
    scheduled = due + interval
    off = (wall_now + scheduled - mono_now) % interval  # where on the grid the scheduled instant falls
    if scheduled > mono_now and (min(off, interval - off) <= tolerance or spread > tolerance):
        return scheduled
    earliest = max(mono_now, due + interval / 2.0)
    return earliest + next_aligned(wall_now + earliest - mono_now, interval)


def read_clocks(monotonic: Callable[[], float], wall: Callable[[], float]) -> Tuple[float, float, float]:
    """(monotonic, wall, spread): the wall clock read between two monotonic reads, their midpoint and distance.

    Read up to three times for a spread within ALIGN_TOLERANCE_S; the tightest reading is returned.
    """
    best = (0.0, 0.0, math.inf)
    for _ in range(3):
        before = monotonic()
        wall_now = wall()
        after = monotonic()
        if after - before < best[2]:
            best = ((before + after) / 2.0, wall_now, after - before)
        if best[2] <= ALIGN_TOLERANCE_S / 10.0:
            break
    return best


def stream_max_age(interval: float, slow_interval: float) -> Optional[float]:
    """The slow tier's `slow_max_age` for a stream: None (read every field) when `slow_interval` <= `interval`.

    sampler.slow_max_age's half interval of slack would otherwise skip the slow tier on the one short gap of an
    alignment (after the first sample, after a wall-clock step), where a stream promises every field every sample.
    """
    return None if slow_interval <= interval else slow_max_age(interval, slow_interval)
