"""The store writer's bounded retry buffer: samples the store has not taken yet, and the count of those given up.

A store that refuses a write (read-only, full, locked) must not stop collection, and a passing fault must lose
nothing: each tick's samples join this buffer, which is written whole and emptied only when the store takes it.
Its bound is time, not size: samples older than `buffer_s` before now are dropped, oldest first. Every sample that
leaves it other than by being written is counted in `dropped` (the counters are the writer's, see `WriterStats`):
trimmed for age, discarded when the store is damaged or the writer stops, or unstorable (a value of the wrong type,
from a bug, which is also counted in `unstorable` and said at most once a minute). So the figures always add up:
every sample handed over was stored, thinned, or dropped.

It takes no lock. The buffer itself is used from the writer's thread only (its `stop` runs after that thread
ended); `clock_stepped` comes from whichever thread noticed the step, under the writer's lock, and moves only the
time of the last drop line, a log's rate limit: a race there costs at most one line said early or late.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable

from factoryctl.model.telemetry import NodeSample

log = logging.getLogger("factoryctl.telemetry")

#: A sample, and whether its slow tier (temperature, ECC) is stored with it.
Buffered = tuple[NodeSample, bool]

#: An unstorable sample is said at most this often (a broken agent sends one a tick).
DROP_LOG_EVERY_S = 60.0


class WriteBuffer:
    """Samples waiting for the store, oldest first, at most `buffer_s` old; what leaves unwritten is counted."""

    def __init__(self, buffer_s: float, counters: collections.Counter[str], clock: Callable[[], float]) -> None:
        """Keep up to `buffer_s` seconds of samples; count drops in `counters`; `clock` times the drop log lines."""
        self.buffer_s = buffer_s
        self._counters = counters
        self._clock = clock
        self._pending: collections.deque[Buffered] = collections.deque()
        self._last_drop_log = float("-inf")

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, sample: NodeSample, slow: bool) -> None:
        """Buffer `sample` (the caller adds them in time order), its slow tier stored with it when `slow`."""
        self._pending.append((sample, slow))

    def batch(self) -> list[Buffered]:
        """Everything buffered, oldest first: what the next write is to store."""
        return list(self._pending)

    def trim(self, now: float) -> None:
        """Drop (and count) the samples older than `buffer_s` before `now`."""
        horizon = now - self.buffer_s
        pending = self._pending
        while pending and pending[0][0].time < horizon:
            pending.popleft()
            self._counters["dropped"] += 1

    def written(self) -> None:
        """The store took everything buffered."""
        self._pending.clear()

    def keep_only(self, storable: Iterable[Buffered]) -> None:
        """Keep only `storable` (the unstorable ones were dropped with `drop_unstorable`)."""
        self._pending = collections.deque(storable)

    def discard(self, more: int = 0) -> None:
        """Give up everything buffered (and `more` samples never buffered), counting them as dropped."""
        self._counters["dropped"] += len(self._pending) + more
        self._pending.clear()

    def drop_unstorable(self, sample: NodeSample, problem: str) -> None:
        """Drop a sample that can never be stored; said at most once a minute, with the count so far."""
        self._counters["dropped"] += 1
        self._counters["unstorable"] += 1
        now = self._clock()
        if now - self._last_drop_log >= DROP_LOG_EVERY_S:
            log.warning(
                "%s: a sample cannot be stored (%s); dropped it and stored the others (%d dropped so far).",
                sample.node,
                problem,
                self._counters["unstorable"],
            )
            self._last_drop_log = now

    def clock_stepped(self, step: float) -> None:
        """The wall clock jumped `step` seconds: the last drop line was said that much later on it."""
        self._last_drop_log += step
