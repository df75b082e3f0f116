"""A dashboard told to stop always ends: once a stop signal came, a watchdog gives the app a few seconds to close.

Textual writes the screen through one thread with a bounded queue and no error handling: when the terminal is gone,
that thread dies and the app's next writes (the ones that restore the terminal as it quits) can block forever. So
the first SIGTERM, SIGINT or SIGHUP arms this watchdog: if the app has not finished `SHUTDOWN_GRACE_S` later, the
watchdog releases the node sessions itself and ends the process with the signal's status (129 for a closed
terminal), leaving the blocked thread behind. Imports no Textual.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

#: How long the app may take to close after a stop signal before the watchdog ends the process itself. Textual's own
#: shutdown takes well under a second; the node sessions are released after it, outside this grace.
SHUTDOWN_GRACE_S = 5.0


class ShutdownWatchdog:
    """Release the sessions once (`release_once`), and end the process if the app hangs after a stop signal."""

    def __init__(
        self,
        release: Callable[[], None],
        grace_s: float = SHUTDOWN_GRACE_S,
        end_process: Callable[[int], object] = os._exit,
    ) -> None:
        self._release = release
        self.grace_s = grace_s
        self._end_process = end_process
        self._finished = threading.Event()
        self._release_lock = threading.Lock()
        self._released = False
        self._thread: threading.Thread | None = None

    def arm(self, status: int) -> None:
        """A stop signal came (`status`: its exit status): watch the app close. Called from a signal handler.

        Only the main thread runs signal handlers, so the check needs no lock (a lock here could be the one the
        interrupted code holds); a second signal changes nothing.
        """
        if self._thread is not None or self._finished.is_set():
            return
        self._thread = threading.Thread(target=self._watch, args=(status,), name="dash-shutdown-watch", daemon=True)
        self._thread.start()

    def finished(self) -> None:
        """The app has closed (the terminal is restored, or cannot be): the caller releases the sessions itself."""
        self._finished.set()

    def release_once(self) -> None:
        """Release the node sessions, once whoever calls first (the main thread, or the watchdog for a hung app)."""
        with self._release_lock:
            if self._released:
                return
            self._released = True
            self._release()

    def _watch(self, status: int) -> None:
        if self._finished.wait(self.grace_s):
            return
        with contextlib.suppress(Exception):  # nobody would read a traceback: the terminal is gone
            self.release_once()
        self._end_process(status)
