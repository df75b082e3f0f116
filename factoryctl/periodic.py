"""A task run on its own thread at once and then every `interval_s`: the controller's scheduling passes and power loop.

Both loops had their own start, stop, reconfigure and wait, and they had drifted apart: one timed its interval on
the wall clock (a clock stepped back an hour by NTP stalled it for that hour), one did not wake when a reload
shortened its interval (a reload from 1h to 10s waited out the hour), and both joined on a stop, so a reload that
turned a loop off held the controller's own loop behind a run waiting on a slow node. Here the interval is timed on
the monotonic clock; only a deadline the task gives (the power loop's next price interval, a wall-clock time) is
read on the wall clock, again every `CLOCK_CHECK_S`. A reload wakes the wait (the next run comes at once), and a
stop may only be asked for (`signal_stop`): the run under way ends on its own and the thread with it, at once when
the task watches `stop_asked` (the power loop's run gives up its nodes: a hung one held the controller's stop 20 s).
Standard library only: factoryctl.jobs and factoryctl.power (sibling layers) both use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Longest single wait while a wall-clock deadline is pending: a stepped wall clock does not miss it by more.
CLOCK_CHECK_S = 1.0


class Periodic:
    """Calls `task()` at once, then every `interval_s` (monotonic) or at the wall-clock time it returned, if sooner.

    `task` returns the wall-clock time (seconds since the epoch) by which it wants to run again, or None; one not
    after the run's start is ignored (else each run would bring another at once). It must not raise: a loop logs
    its own failures and tries again next time.
    """

    def __init__(
        self,
        name: str,
        task: Callable[[], float | None],
        interval_s: float,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`name`: the thread's; `wall_clock` reads the task's deadlines; the interval is timed on `monotonic`."""
        self.name = name
        self.interval_s = interval_s
        self._task = task
        self._wall_clock, self._monotonic = wall_clock, monotonic
        self._wake = threading.Event()
        #: Set once a stop is asked for: a run under way may watch it to end early (a fan-out's `cancel`).
        self.stop_asked = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive (a run may still be ending after `signal_stop`)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (the first run at once)."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the thread to end after its run, without waiting for it (a run may wait on a slow node for long)."""
        self.stop_asked.set()
        self._wake.set()

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the thread to end after its run and wait for it (at most `timeout`): at the controller's shutdown."""
        self.signal_stop()
        self.join(timeout)

    def join(self, timeout: float = 20.0) -> None:
        """Wait for the thread to end (at most `timeout`), once asked to stop."""
        if self._thread is not None:
            self._thread.join(timeout)

    def set_interval(self, interval_s: float) -> None:
        """A new interval, and a run at once (from a reload: its new configuration is used without waiting)."""
        self.interval_s = interval_s
        self._wake.set()

    def ended(self) -> None:
        """Called on the thread as it ends (a subclass closes what its runs opened there); nothing by default."""

    def _run(self) -> None:
        try:
            while not self.stop_asked.is_set():
                self._wake.clear()  # before the run: a reload during it brings the next run at once
                started = self._wall_clock()
                deadline = self._task()
                self._wait(deadline if deadline is not None and deadline > started else None)  # else one at once
        finally:
            self.ended()

    def _wait(self, deadline: float | None) -> None:
        """Until `interval_s` has passed on the monotonic clock, or the wall clock reaches `deadline`; a wake ends it."""
        due = self._monotonic() + self.interval_s
        while not self.stop_asked.is_set():
            left = due - self._monotonic()
            if deadline is not None:
                left = min(left, deadline - self._wall_clock(), CLOCK_CHECK_S)
            if left <= 0 or self._wake.wait(left):
                return
