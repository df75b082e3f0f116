"""The stream schedule: samples on wall-clock multiples of the interval, waited for on the monotonic clock.

Pure arithmetic with made-up clocks (no sleeping, nothing timed): every node lands on the same wall-clock instants
whatever its monotonic clock reads, a step of the wall clock re-aligns without a stall or a burst, and intervals
that do not divide a day (or a second) work alike.
"""

from __future__ import annotations

import itertools
import math

import pytest

from factoryctl.agent.schedule import ALIGN_TOLERANCE_S, next_aligned, next_due, read_clocks

WALL = 1_795_000_000.0  # a wall clock in 2026, to test at realistic magnitudes
INTERVALS = (0.05, 0.3, 1.0, 7.0, 13.7, 3600.0)  # 7 s and 13.7 s do not divide a day, 0.3 s no second


def _on_grid(wall: float, interval: float) -> bool:
    off = math.fmod(wall, interval)
    return min(off, interval - off) < 1e-6


@pytest.mark.parametrize("interval", INTERVALS)
def test_next_aligned_is_the_next_multiple_of_the_interval_within_one_interval(interval: float) -> None:
    for wall in (WALL, WALL + 0.123, WALL + interval / 2, WALL + 86_399.9):
        delay = next_aligned(wall, interval)
        assert 0 < delay <= interval
        assert _on_grid(wall + delay, interval)


def test_on_the_grid_the_next_instant_is_a_whole_interval_away() -> None:
    assert next_aligned(1000.0, 1.0) == 1.0  # never 0: the sample just taken is not taken again
    assert next_aligned(1000.0 - 1e-12, 1.0) == pytest.approx(1e-12, abs=1e-9)


def _run(start_mono: float, start_wall: float, interval: float, ticks: int, step_at: int = -1, step: float = 0.0):
    """Simulate a stream whose sample takes 3 ms, the wall clock stepping by `step` before tick `step_at`.

    Returns (monotonic, wall) instants of the samples taken.
    """
    offset = start_wall - start_mono  # wall = mono + offset
    due = start_mono
    taken = []
    for tick in range(ticks):
        if tick == step_at:
            offset += step
        taken.append((due, due + offset))
        now = due + 0.003  # sampled and written
        previous, due = due, next_due(due, now, now + offset, interval)
        assert previous + interval / 2 <= due <= previous + 1.5 * interval  # no two samples close, no stall
    return taken


@pytest.mark.parametrize("interval", INTERVALS)
def test_nodes_with_different_monotonic_clocks_sample_at_the_same_wall_instants(interval: float) -> None:
    a = _run(start_mono=12.5, start_wall=WALL + 0.41, interval=interval, ticks=6)
    b = _run(start_mono=98_765.25, start_wall=WALL + 0.41 + interval * 0.37, interval=interval, ticks=6)
    assert a[0][1] == WALL + 0.41  # the first sample at once
    assert all(_on_grid(w, interval) for _, w in a[1:] + b[1:])  # the next ones on the grid
    grid_a = {round(w / interval) for _, w in a[1:]}
    grid_b = {round(w / interval) for _, w in b[1:]}
    assert len(grid_a & grid_b) >= 3  # the same instants on both nodes


def test_once_aligned_the_schedule_is_the_monotonic_one_an_interval_apart() -> None:
    taken = _run(start_mono=5.0, start_wall=WALL + 0.6, interval=1.0, ticks=10)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(taken[1:])]
    assert gaps == pytest.approx([1.0] * len(gaps), abs=1e-9)


@pytest.mark.parametrize("step", [0.4, -0.4, 86_400.25, -3_600.7, 0.1, -0.05])
def test_a_wall_clock_step_re_aligns_at_once_without_a_stall_or_a_burst(step: float) -> None:
    interval = 1.0
    taken = _run(start_mono=5.0, start_wall=WALL + 0.6, interval=interval, ticks=12, step_at=5, step=step)
    monos = [m for m, _ in taken]
    gaps = [b - a for a, b in itertools.pairwise(monos)]
    assert all(interval / 2 <= g <= 1.5 * interval for g in gaps)  # no stall, no two samples close together
    assert sum(abs(g - interval) > 1e-6 for g in gaps[1:]) <= 1  # one uneven gap at most: the re-alignment itself
    after = [w for _, w in taken[6:]]  # the samples after the one taken when the step was seen
    assert all(_on_grid(w, interval) for w in after)


def test_a_step_within_the_tolerance_keeps_the_monotonic_schedule() -> None:
    small = ALIGN_TOLERANCE_S / 2
    taken = _run(start_mono=5.0, start_wall=WALL + 0.6, interval=1.0, ticks=8, step_at=4, step=small)
    monos = [m for m, _ in taken]
    assert [b - a for a, b in itertools.pairwise(monos[1:])] == pytest.approx([1.0] * 6, abs=1e-9)


def test_a_stream_that_fell_behind_skips_the_missed_samples_and_lands_on_the_grid() -> None:
    due = 100.0  # due at 100 (wall WALL), but the sample took 3.4 s (a slow driver, a blocked pipe)
    now = 103.4
    nxt = next_due(due, now, WALL + 3.4, 1.0)
    assert nxt == pytest.approx(104.0)  # not 101, 102, 103 at once: the next grid instant after now


def test_waking_a_hair_before_the_grid_instant_does_not_sample_twice() -> None:
    # The monotonic wait ended a little before the wall clock reached the instant (two clocks, read apart).
    due = 100.0
    now = 100.002
    nxt = next_due(due, now, WALL - 0.001, 1.0)  # the wall clock reads 1 ms before the grid instant
    assert nxt == pytest.approx(101.0)


def test_short_intervals_use_a_tolerance_smaller_than_the_interval() -> None:
    interval = 0.05  # the tolerance is 5 ms here, not 10: a 6 ms step re-aligns
    due = 100.0
    nxt = next_due(due, 100.001, WALL + 0.006 + 0.001, interval)
    assert nxt == pytest.approx(100.001 + interval - 0.007)


def test_a_reading_whose_clocks_were_read_far_apart_does_not_move_the_schedule() -> None:
    # The thread was preempted for 30 ms between its two reads: the wall clock seems 30 ms off the grid, but is not.
    due = 100.0
    assert next_due(due, 100.002, WALL + 0.002 + 0.030, 1.0, spread=0.030) == pytest.approx(101.0)
    assert next_due(due, 100.002, WALL + 0.002 + 0.030, 1.0) == pytest.approx(100.002 + 1.0 - 0.032)  # read tight
    assert next_due(due, 103.4, WALL + 3.4 + 0.030, 1.0, spread=0.030) > 103.4  # behind: on, never at once


class _Clocks:
    """A monotonic and a wall clock; each read advances both by `steps`' next value (a preemption between reads)."""

    def __init__(self, steps: list[float]) -> None:
        self.mono, self.wall, self.steps = 50.0, WALL, steps

    def _advance(self) -> None:
        step = self.steps.pop(0) if self.steps else 0.0
        self.mono += step
        self.wall += step

    def monotonic(self) -> float:
        self._advance()
        return self.mono

    def time(self) -> float:
        self._advance()
        return self.wall


def test_read_clocks_reads_again_after_a_preemption_and_keeps_the_tightest_reading() -> None:
    clocks = _Clocks([0.0, 0.040, 0.0, 0.0, 0.0, 0.0])  # preempted 40 ms between the first two reads
    mono, wall, spread = read_clocks(clocks.monotonic, clocks.time)
    assert spread == 0.0
    assert wall - mono == pytest.approx(WALL - 50.0)  # the true offset between the clocks
    always_late = _Clocks([0.0, 0.040, 0.0] * 3)
    assert read_clocks(always_late.monotonic, always_late.time)[2] == pytest.approx(0.040)


def test_a_stream_started_just_before_a_grid_instant_waits_for_the_next_one() -> None:
    # Started 50 ms before a whole second: the second sample is at the next whole second but one, never 50 ms later
    # (two samples that close would carry counters that have not moved).
    taken = _run(start_mono=5.0, start_wall=WALL - 0.050, interval=1.0, ticks=3)
    assert [w - WALL for _, w in taken[1:]] == pytest.approx([1.0, 2.0], abs=1e-6)
    later = _run(start_mono=5.0, start_wall=WALL - 0.6, interval=1.0, ticks=2)
    assert later[1][1] - WALL == pytest.approx(0.0, abs=1e-6)  # 0.6 s on: the next whole second
