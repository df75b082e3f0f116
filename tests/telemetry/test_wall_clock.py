"""The controller's wall clock on its own: which readings are steps, and which forward steps retention keeps.

The store writer's clock tests (`test_writer_clocks.py`) see these through the writer; here the bookkeeping moved
out of it (`factoryctl.telemetry.wall_clock`) is checked directly, on clocks moved by hand and a real SQLite store.
"""

from __future__ import annotations

from pathlib import Path

from clocks import T0, Clocks

from factoryctl.store.rows import ClockStep
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.wall_clock import CLOCK_STEP_S, WallClock, stored_steps

DAY = 86400.0


def wall_clock(clocks: Clocks, steps: list[ClockStep] | None = None) -> WallClock:
    return WallClock(lambda: clocks.wall, lambda: clocks.mono, steps if steps is not None else [])


def test_time_passing_and_small_drift_are_no_step() -> None:
    clocks = Clocks()
    wall = wall_clock(clocks)
    assert wall.read() == (T0, None)
    clocks.tick(3600)
    clocks.wall += CLOCK_STEP_S / 2  # NTP slewing, not stepping
    assert wall.read() == (T0 + 3600 + CLOCK_STEP_S / 2, None)
    assert wall.steps() == []
    assert wall.to_save() is None


def test_a_forward_step_is_kept_with_the_clock_s_time_before_it() -> None:
    clocks = Clocks()
    wall = wall_clock(clocks)
    wall.read()
    clocks.tick(10)
    clocks.wall += DAY
    now, step = wall.read()
    assert step == ClockStep(at=T0 + 10, seconds=DAY)
    assert now == T0 + 10 + DAY
    assert wall.steps() == [ClockStep(T0 + 10, DAY)]
    assert wall.read()[1] is None  # allowed for once


def test_a_step_back_undoes_the_newest_steps_ahead_first() -> None:
    clocks = Clocks()
    wall = wall_clock(clocks, [ClockStep(T0 - 2 * DAY, 60.0), ClockStep(T0 - DAY, 600.0)])
    wall.read()
    clocks.wall -= 630.0
    _, step = wall.read()
    assert step is not None
    assert step.seconds == -630.0
    assert wall.steps() == [ClockStep(T0 - 2 * DAY, 30.0)]  # 600 s undone whole, 30 of the 60 s before it


def test_steps_are_saved_once_and_again_after_a_failed_save() -> None:
    clocks = Clocks()
    wall = wall_clock(clocks)
    wall.read()
    clocks.wall += DAY
    wall.read()
    assert wall.to_save() == [ClockStep(T0, DAY)]
    assert wall.to_save() is None
    wall.not_saved()
    assert wall.to_save() == [ClockStep(T0, DAY)]


def test_forgetting_drops_the_oldest_only_while_they_are_still_the_oldest() -> None:
    first, second = ClockStep(T0 - DAY, 60.0), ClockStep(T0, 120.0)
    wall = wall_clock(Clocks(), [first, second])
    wall.forget([second])  # not the oldest: the list changed since retention looked
    assert wall.steps() == [first, second]
    wall.forget([first])
    assert wall.steps() == [second]
    assert wall.to_save() == [second]


def test_steps_saved_in_the_store_come_back_as_clock_steps(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    store.save_clock_steps([ClockStep(T0, DAY)])
    (step,) = stored_steps(store)
    assert isinstance(step, ClockStep)
    assert (step.at, step.seconds) == (T0, DAY)
