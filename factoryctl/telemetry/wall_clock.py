"""The controller's wall clock, read against the monotonic clock so that a step (NTP, the RTC) is told from time.

Node states, rows and retention go by the wall clock, and it can jump. Each reading is compared with the monotonic
clock since the last one: a difference of `CLOCK_STEP_S` or more is a step, which the reader allows for (the writer
moves its health bookkeeping and node clock estimates by it) instead of taking it for a day of silence. The forward
steps are kept, oldest first, because retention must not count them (`factoryctl.store.samples.retention_cut`):
rows stamped before a +1 day step are not a day older than they are. They are saved in the store's meta table
(`clock_steps`) so a restarted controller keeps allowing for them, and forgotten once retention is past them
(`steps_in_force`). A step back undoes the newest steps ahead first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from factoryctl.store.rows import ClockStep
from factoryctl.store.sqlite import Store, StoreError

#: The wall clock moving this much more (or less) than the monotonic clock between two readings is a step.
CLOCK_STEP_S = 2.0


def timers_clock(clock: Callable[[], float], monotonic: Callable[[], float] | None) -> Callable[[], float]:
    """The clock intervals are timed by: `monotonic`, else the real one beside the real wall clock, else `clock`.

    A fake `clock` given alone serves both: the tests that move one clock take it to be free of steps.
    """
    return monotonic or (time.monotonic if clock is time.time else clock)


def stored_steps(store: Store) -> list[ClockStep]:
    """The wall clock's forward steps a previous run saw and retention still allows for (empty when unknown)."""
    try:
        return list(store.clock_steps() or ())
    except StoreError:
        return []


class WallClock:
    """Readings of the wall clock that tell its steps, and its forward steps still in force for retention.

    Not locked: its owner (the store writer) calls it under its own lock.
    """

    def __init__(
        self, clock: Callable[[], float], monotonic: Callable[[], float] | None, steps: list[ClockStep]
    ) -> None:
        """Read `clock`, telling its steps by `monotonic` (see `timers_clock`); `steps` are those still in force."""
        self.clock = clock
        self.monotonic = timers_clock(clock, monotonic)
        self._last_read: tuple[float, float] | None = None  # (wall, monotonic) at the last reading
        self._steps = steps
        self._saved = True  # the store has `_steps` as they are

    def read(self) -> tuple[float, ClockStep | None]:
        """The wall clock now, and the step it took since the last reading (None when it kept time).

        A step is allowed for once, whatever the caller does with it: a forward one is kept, a step back undoes the
        newest kept ones.
        """
        wall, mono = self.clock(), self.monotonic()
        last, self._last_read = self._last_read, (wall, mono)
        if last is None:
            return wall, None
        last_wall, last_mono = last
        seconds = (wall - last_wall) - (mono - last_mono)
        if abs(seconds) < CLOCK_STEP_S:
            return wall, None
        step = ClockStep(last_wall + (mono - last_mono), seconds)
        self._keep(step)
        return wall, step

    def _keep(self, step: ClockStep) -> None:
        if step.seconds > 0:
            self._steps.append(step)
        back = -step.seconds
        while back > 0 and self._steps:  # a step back undoes the newest steps ahead first
            when, ahead = self._steps.pop()
            if ahead > back:
                self._steps.append(ClockStep(when, ahead - back))
            back -= ahead
        self._saved = False

    def steps(self) -> list[ClockStep]:
        """The forward steps still to allow for, oldest first."""
        return list(self._steps)

    def forget(self, oldest: list[ClockStep]) -> None:
        """Retention is past these oldest steps (`steps_in_force`): drop them, unless the list changed since."""
        if oldest and self._steps[: len(oldest)] == oldest:
            del self._steps[: len(oldest)]
            self._saved = False

    def to_save(self) -> list[ClockStep] | None:
        """The steps to save in the store when they changed since last time (None when they did not)."""
        steps = None if self._saved else list(self._steps)
        self._saved = True
        return steps

    def not_saved(self) -> None:
        """Saving what `to_save` gave failed: give it again next time."""
        self._saved = False
