"""One liveness watch for every SSH connection of the process, instead of a sleeping thread per node.

Keepalives alone never fail on a silently dead peer (TCP retransmits for many minutes), so a long-lived agent stream
would wait forever, and a command its whole timeout: each watched connection (from its first command or agent on)
gets a real round trip every interval, and one that does not answer in time is closed, which ends its channels so
the command or session above notices. Each connection used to have a thread of its own that slept between its
checks, a fifth thread per node (10,000 threads at 2,000 nodes against the machine's task limit). Now one scheduler
thread sleeps until the next check is due and runs it on a short-lived thread, so a dead peer's timeout never delays
another node's check; the scheduler ends when nothing is watched. A check left unanswered for seconds already tells
that the peer went silent, long before its timeout: `unanswered_for` says so to whoever asks (an agent's teardown
skips what could not cross a dead connection).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("factoryctl.transport")


@dataclass(eq=False)
class WatchedConnection:
    """One watched connection: `probe` (a bounded round trip: True if it answered) every `every` seconds."""

    name: str
    every: float
    probe: Callable[[], bool]
    on_dead: Callable[[], None]
    due: float = 0.0
    checking: threading.Thread | None = None
    asked: float | None = None  # when the check under way started (time.monotonic), None between checks
    ended: bool = False

    def unanswered_for(self) -> float:
        """How long the check under way has been waiting for its answer (0.0 when none is under way)."""
        asked = self.asked
        return 0.0 if asked is None else max(time.monotonic() - asked, 0.0)


class LivenessWatch:
    """The scheduler of every watched connection's checks (one per process: `WATCH`)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: list[tuple[float, int, WatchedConnection]] = []  # (due, order, watched): a heap
        self._order = itertools.count()
        self._live: set[WatchedConnection] = set()
        self._thread: threading.Thread | None = None

    def add(self, name: str, every: float, probe: Callable[[], bool], on_dead: Callable[[], None]) -> WatchedConnection:
        """Watch a connection from now on: `probe` every `every` s; a False one calls `on_dead` and ends its watch."""
        watched = WatchedConnection(name, every, probe, on_dead, due=time.monotonic() + every)
        with self._changed:
            heapq.heappush(self._queue, (watched.due, next(self._order), watched))
            self._live.add(watched)
            if self._thread is None:
                thread = threading.Thread(target=self._run, daemon=True, name="ssh-watch")
                try:
                    thread.start()
                except RuntimeError:  # out of threads: the caller is told, as when each watch had a thread of its own
                    watched.ended = True
                    self._live.discard(watched)
                    raise
                self._thread = thread
            self._changed.notify()
        return watched

    def remove(self, watched: WatchedConnection) -> threading.Thread | None:
        """Stop watching at once; returns the thread of a check under way (its round trip is bounded), to join."""
        with self._changed:
            watched.ended = True
            self._live.discard(watched)
            self._changed.notify()
            return watched.checking

    def watching(self) -> int:
        """How many connections are watched (tests look)."""
        with self._changed:
            return len(self._live)

    def _run(self) -> None:
        while True:
            with self._changed:
                due = self._next_due()
                if due is None and not self._live:
                    self._thread = None  # nothing left to watch: the next `add` starts a new scheduler
                    return
                if due is None:  # every watched connection is being checked: the end of a check wakes this
                    self._changed.wait()
                    continue
                if due.due > time.monotonic():
                    self._changed.wait(due.due - time.monotonic())
                    continue
                heapq.heappop(self._queue)
                self._start_check(due)

    def _next_due(self) -> WatchedConnection | None:
        """The watched connection checked next, dropping the ended ones (you hold the lock)."""
        while self._queue and self._queue[0][2].ended:
            heapq.heappop(self._queue)
        return self._queue[0][2] if self._queue else None

    def _start_check(self, watched: WatchedConnection) -> None:
        """Run `watched`'s probe on a thread of its own; it is queued again once the probe answered (lock held)."""
        checker = threading.Thread(target=self._check, args=(watched,), daemon=True, name=watched.name)
        watched.checking = checker
        watched.asked = time.monotonic()
        try:
            checker.start()
        except RuntimeError:  # this machine is out of threads: try again at the next interval
            log.debug("%s: no thread for a liveness check; retrying in %g s", watched.name, watched.every)
            watched.checking = watched.asked = None
            self._requeue(watched)

    def _check(self, watched: WatchedConnection) -> None:
        alive = False
        try:
            alive = watched.probe()
        except Exception:  # a bug of ours must not end the watch of every other connection
            log.debug("%s: the liveness check failed", watched.name, exc_info=True)
        if not alive and not watched.ended:
            with contextlib.suppress(Exception):
                watched.on_dead()
        with self._changed:
            watched.checking = watched.asked = None
            if alive and not watched.ended:
                self._requeue(watched)
            else:
                watched.ended = True
                self._live.discard(watched)
            self._changed.notify()

    def _requeue(self, watched: WatchedConnection) -> None:
        watched.due = time.monotonic() + watched.every
        heapq.heappush(self._queue, (watched.due, next(self._order), watched))
        self._changed.notify()


#: The process's one watch (jump hosts and nodes of every pool alike).
WATCH = LivenessWatch()
