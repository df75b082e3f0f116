"""Telling the controller's own stalls from its nodes' silence.

A controller that does not run for a while (SIGSTOP, a debugger, swapped out, its VM paused) hears nothing from its
nodes meanwhile, although their samples wait in the pipes, and when it runs again it may look before its reader
threads have read them. So a heartbeat thread wakes every `TICK_S`: a wake-up that comes much later than it was due
means the whole process was not running, and silence up to then is the controller's. Whoever judges silence must
ask `silence_from` first, so every node is judged from the end of the stall (a fresh grace) instead of declared down.

A suspended machine does not need this: the monotonic clock the links time silence on stops with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from factoryctl.telemetry.health import MIN_JUDGED_INTERVAL_S

log = logging.getLogger("factoryctl.telemetry")

#: How often the heartbeat wakes.
TICK_S = 0.25
#: A wake-up this much later than due (at least) is a stall of the controller, not a busy moment.
MIN_LATE_S = 1.0


def late_for_stall_s(interval_s: float) -> float:
    """How late the heartbeat must wake for the controller to count as stalled: one judged interval, at least 1 s.

    A node is `degraded` after 1.5 intervals of silence, so a stall much longer than an interval would show; a
    shorter threshold would take a loaded machine (threads waiting a few tenths of a second for the GIL) for one.
    """
    return max(interval_s, MIN_JUDGED_INTERVAL_S, MIN_LATE_S)


class StallWatch:
    """A heartbeat that notices when the controller itself did not run, and from when silence is the nodes' again."""

    def __init__(
        self, interval_s: float, monotonic: Callable[[], float] = time.monotonic, tick_s: float = TICK_S
    ) -> None:
        """Watch for stalls longer than `late_for_stall_s(interval_s)`; times are read from `monotonic`."""
        self.tick_s = tick_s
        self.late_s = late_for_stall_s(interval_s)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_beat = monotonic()
        self._stall_end = float("-inf")  # when the latest stall was noticed to have ended
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_interval(self, interval_s: float) -> None:
        """A reload changed the sampling interval."""
        self.late_s = late_for_stall_s(interval_s)

    def beat(self) -> float | None:
        """The heartbeat woke: returns how long the controller was stalled when it woke that late, else None."""
        now = self._monotonic()
        with self._lock:
            gap, began = now - self._last_beat, self._last_beat
            self._last_beat = now
            if gap - self.tick_s < self.late_s:
                return None
            if self._stall_end < began:  # nobody noticed it before the heartbeat
                self._stall_end = now
        return gap

    def silence_from(self, heard: float) -> float:
        """From when to count the silence of a node last heard at `heard` (monotonic): the end of a stall after it.

        A stall ends when the first thread notices it: the heartbeat, or one that woke before it (which sees the
        heartbeat overdue). Everyone asking later is given the same moment, so a node is excused once per stall.
        """
        now = self._monotonic()
        with self._lock:
            if now - self._last_beat - self.tick_s >= self.late_s and self._stall_end < self._last_beat:
                self._stall_end = now
            return max(heard, self._stall_end)

    def start(self) -> None:
        """Beat on a thread of its own (none left on this machine: no stall is told, as before)."""
        thread = threading.Thread(target=self._run, name="stall-watch", daemon=True)
        with self._lock:
            self._last_beat = self._monotonic()
        try:
            thread.start()
        except RuntimeError:
            log.debug("no thread for the stall watch: a stalled controller may report its nodes down")
            return
        self._thread = thread

    def stop(self) -> None:
        """End the heartbeat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            stalled = self.beat()
            if stalled is not None:
                log.warning(
                    "the controller was stalled for %.0f s (paused, swapped or suspended); nodes given time to "
                    "catch up",
                    stalled,
                )
