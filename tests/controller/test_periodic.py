"""`Periodic`, the controller's loops' thread: its interval on the monotonic clock, its deadline on the wall clock.

Both clocks are the test's: the wall clock is stepped, the monotonic one is the real one (a run due in an hour is
not waited for).
"""

from __future__ import annotations

import threading
import time

from waiting import wait_for

from factoryctl.periodic import Periodic

HOUR = 3600.0


class Wall:
    """A wall clock `offset` seconds from the real one, which the test sets."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_a_deadline_on_the_wall_clock_brings_the_next_run_before_the_interval() -> None:
    wall = Wall()
    runs: list[float] = []
    deadline = time.time() + HOUR  # the next price interval's start, an hour ahead on the wall clock

    def task() -> float:
        runs.append(wall())
        return deadline

    loop = Periodic("test-periodic", task, HOUR, wall)
    loop.start()
    try:
        wait_for(lambda: len(runs) == 1, 10, "the first run")
        wall.offset = HOUR + 1  # the wall clock reaches the deadline (a step forward): read again every second
        wait_for(lambda: len(runs) == 2, 10, "the run at the deadline")
    finally:
        loop.stop()
    assert not loop.running
    assert len(runs) == 2  # the deadline, passed, brought no further run (the interval is an hour)


def test_a_new_interval_brings_a_run_at_once_and_signal_stop_does_not_wait_for_the_run() -> None:
    release = threading.Event()
    runs: list[int] = []

    def task() -> None:
        runs.append(1)
        if len(runs) == 2:
            release.wait(10)  # the second run hangs (a node that does not answer)

    loop = Periodic("test-periodic", task, HOUR)
    loop.start()
    try:
        wait_for(lambda: len(runs) == 1, 10, "the first run")
        loop.set_interval(HOUR / 2)  # a reload: the hour is not waited out
        wait_for(lambda: len(runs) == 2, 10, "the run at once")
        loop.signal_stop()  # returns during the hanging run
        assert loop.running
    finally:
        release.set()
        loop.join()
    assert not loop.running
    assert len(runs) == 2  # no run after the stop
