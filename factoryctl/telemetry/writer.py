"""The store writer: gathers samples from every link and writes them in one transaction per tick.

Links hand samples over from their reader threads (`offer` only appends to a list, under one lock); one thread then
runs the tick: it takes what arrived, judges every node's state from its silence (`NodeHealth`; a stall of the
controller itself excuses it), derives health events, picks the slow tier (temperature and ECC every
`slow_interval_s`) and writes the batch with the tick's state changes and events in one transaction.

Its invariants: collection never waits for the store, and every sample handed over is stored, thinned or dropped and
counted, so the figures add up. A store that refuses a write (read-only, full, locked) keeps the batch in the bounded
`WriteBuffer`, and the write is tried again after a wait that doubles from one tick up to `RETRY_MAX_S` (back to one
tick once it succeeds): each attempt writes the whole buffer, and trying it every tick cost the controller 16 times
its normal CPU for as long as the store refused. A damaged store is no passing fault: from its first refused write
nothing more is written, what is held is dropped and counted, and `damaged` is set for the controller to stop on.
A sample that can never be stored (a value of the wrong type, from a bug) is dropped on its own (`write_batch`), so
it cannot hold back every other node's rows; a write failing for no reason found keeps the tick's changes and events
for one more try (`_not_written`). Samples and node states are on the controller's clock: `ClockCorrection`
re-stamps samples of a node whose clock is off and tells a step of our own wall clock, which moves the health
bookkeeping with it instead of making every node look silent for a day. A restart takes back what the store holds,
each node's newest sample and state, so what was logged before is not logged again. State changes and GPU events
are logged folded per tick (`StateLog`); the figures the benchmarks report are `WriterStats`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from factoryctl.errors import FactoryError, NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import ClockStep, Event, NodeState
from factoryctl.store.sqlite import Store, StoreDamaged, StoreError
from factoryctl.telemetry.batch_write import write_batch
from factoryctl.telemetry.clock_correction import ClockCorrection
from factoryctl.telemetry.health import NodeHealth, ThermalEpisodes, carry_forward, gpu_events, state_event
from factoryctl.telemetry.node_clock import NodeClock
from factoryctl.telemetry.restart import stored_fleet
from factoryctl.telemetry.stall_watch import StallWatch
from factoryctl.telemetry.state_log import StateLog, clock_said, clock_way, daemon_hint
from factoryctl.telemetry.wall_clock import stored_steps
from factoryctl.telemetry.write_buffer import Buffered, WriteBuffer
from factoryctl.telemetry.writer_stats import WriterStats
from factoryctl.transport.host_limits import TASK_LIMIT_HINT, is_thread_exhaustion

log = logging.getLogger("factoryctl.telemetry")

FLUSH_EVERY_MAX_S = 0.25  # sample-to-store latency is at most this plus one transaction
#: The longest wait between two writes the store refused (the wait doubles from one tick up to it).
RETRY_MAX_S = 8.0


class StoreWriter:
    """Collects samples, states and events from the links and writes them to the store every tick."""

    def __init__(
        self,
        store: Store,
        interval_s: float,
        slow_interval_s: float = 5.0,
        buffer_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
        stall_watch: StallWatch | None = None,
    ) -> None:
        """Write into `store`; `clock` is the wall clock, `monotonic` the clock its steps are told by.

        A fake `clock` given alone is taken to be step-free, as the tests that move it expect. `stall_watch` (on the
        same monotonic clock) tells when the controller itself was stalled: nodes are not judged for that silence.
        """
        self.store = store
        self.interval_s = interval_s
        self.slow_interval_s = slow_interval_s
        self._clock = clock
        # a restart keeps allowing for the steps
        self._clocks = ClockCorrection(clock, monotonic, stored_steps(store), self._clock_reported)
        self._wall = self._clocks.wall
        self._stall_watch = stall_watch
        self._judged_at = self._wall.monotonic()  # when silence was last judged (`_take_tick`)
        self._lock = threading.Lock()
        self._incoming: list[NodeSample] = []
        self._stats = WriterStats()
        self.counters = self._stats.counters
        self._buffer = WriteBuffer(buffer_s, self.counters, clock)
        self._changes: list[NodeState] = []
        self._events: list[Event] = []
        self._health: dict[str, NodeHealth] = {}
        self._said = StateLog(log)  # state changes, logged folded once per tick
        self._last_slow: dict[str, float] = {}
        stored = stored_fleet(store)  # what a restarted controller knew, from one read of the store:
        self._previous = stored.samples  # each node's newest sample (lost GPUs' UUIDs, the XIDs)
        self._stored = stored.states  # and its state: one found unchanged is no event
        self._thermal = ThermalEpisodes()  # one `thermal` event per episode of slowdown, not one per dip
        self.store_error: StoreError | None = None
        #: Set at the first write a damaged store refused; nothing is written after it (the controller exits).
        self.damaged: StoreDamaged | None = None
        self._last_error_log = 0.0
        self._retry_wait_s = 0.0  # the wait after the last refused write (0: the last write was taken)
        self._retry_at = float("-inf")  # on the monotonic clock: no write is tried before it
        self._put_back = False  # the last write failed unexpectedly; its changes and events were kept (`_not_written`)
        self._stop = threading.Event()
        self._closing = False  # shutting down: silence from nodes is ours, not theirs
        self._thread: threading.Thread | None = None

    @property
    def buffer_s(self) -> float:
        """How many seconds of samples are kept while the store refuses writes."""
        return self._buffer.buffer_s

    # ------------------------------------------------------------------ node set

    def set_nodes(self, names: Iterable[str]) -> None:
        """Track these nodes (new ones start `down` until their first sample); forget the others.

        A node's first judged state is compared with the one the store held when this writer started: found the same,
        it is no change (no event). A node removed and added again by reloads is judged afresh, as its GPUs are.
        """
        wanted = list(names)
        with self._lock:
            now = self._now()
            for name in wanted:
                if name not in self._health:
                    self._health[name] = NodeHealth(
                        name, self.interval_s, since=now, stored=self._stored.pop(name, None)
                    )
            for name in list(self._health):
                if name not in wanted:
                    del self._health[name]
                    self._previous.pop(name, None)
                    self._clocks.forget(name)

    def set_interval(self, interval_s: float, slow_interval_s: float | None = None) -> None:
        """A reload changed the sampling interval (and the slow tier's, when given)."""
        with self._lock:
            self.interval_s = interval_s
            if slow_interval_s is not None:
                self.slow_interval_s = slow_interval_s
            for health in self._health.values():
                health.interval_s = interval_s

    def awaiting_stream(self, names: Iterable[str]) -> None:
        """A reload reconnects or re-streams these nodes: their silence is not judged until they stream or fail."""
        with self._lock:
            now = self._now()
            for name in names:
                if name in self._health:
                    self._health[name].awaiting_stream(now)

    # ------------------------------------------------------------------ SampleSink

    def offer(self, sample: NodeSample) -> None:
        """A sample arrived from a link (re-stamped on the controller's clock when its node's is off)."""
        with self._lock:
            health = self._health.get(sample.node)
            if health is None:
                return  # a node removed by a reload, still draining its last sample
            now = self._now()
            moved = self._clocks.on_our_clock(sample, now)
            if moved.time < now - self._buffer.buffer_s:  # past the buffer: trimmed anyway, so not charged to the
                self.counters["dropped"] += 1  # burst budget, which the newest of a long backlog need (thinning.py)
            elif not health.keeps(moved.time, self._wall.monotonic()):  # far too soon after the last (thinning.py)
                self.counters["thinned"] += 1  # and dropped (`stats`)
                return
            else:
                self._incoming.append(moved)
            change = health.seen(now)  # heard, even when what it said is too old to keep
            if change is not None:
                self._note(change)

    def clock_bounded(self, node: str, node_time: float, asked_at: float) -> None:
        """A link's round trip (`node`'s time when asked at `asked_at`) bounds its offset above: `NodeClock.bounded`."""
        with self._lock:
            self._now()  # a step of our clock since is applied to the estimate before the bound joins it
            self._clocks.bounded(node, node_time - asked_at)

    def _clock_reported(self, node: str, clock: NodeClock, now: float) -> None:
        """One `clock_skew` event per node; the log line is folded with the other nodes' of the tick (`StateLog`).

        Called by `ClockCorrection` from `offer`, with the lock.
        """
        offset = clock.best if clock.off else None
        text = clock_said(node, *clock_way(offset))
        self._events.append(Event(now, "clock_skew", text, node=node, severity="warning" if clock.off else "info"))
        self._said.clock(node, offset)

    def _now(self) -> float:
        """The wall clock, once whatever it stepped by since the last reading is allowed for (call with the lock)."""
        wall, step = self._wall.read()
        if step is not None:
            self._clocks.controller_stepped(step.seconds)  # every node's offset moved by the step
            self._stepped(step.seconds, wall)
        return wall

    def _stepped(self, step: float, now: float) -> None:
        """The wall clock jumped `step` seconds (`WallClock` keeps it for retention): move what was timed on it."""
        for health in self._health.values():
            health.since += step
            if health.last_seen is not None:
                health.last_seen += step
            if health.excused_at is not None:
                health.excused_at += step
        self._last_error_log += step
        self._buffer.clock_stepped(step)
        self._stats.clock_stepped(step)
        text = (
            f"the controller's wall clock stepped {'ahead' if step > 0 else 'back'} by {abs(step):.0f} s (NTP or the "
            "RTC); node states, rollups and retention allow for it."
        )
        log.warning("%s", text)
        self._events.append(Event(now, "clock_step", text, severity="warning"))

    def clock_steps(self) -> list[ClockStep]:
        """The wall clock's forward steps still to allow for, for retention (see `WallClock`)."""
        with self._lock:
            self._now()
            return self._wall.steps()

    def forget_steps(self, oldest: list[ClockStep]) -> None:
        """Retention is past these oldest steps (`steps_in_force`): drop them, unless the list changed since."""
        with self._lock:
            self._wall.forget(oldest)

    def sample_failed(self, node: str, error: NodeError) -> None:
        """The node's agent could not take a sample (`NodeHealth.sample_failed`).

        A node still up with a recent good sample stays up, and the failure is logged at debug level only: an
        occasional nvidia-smi timeout is expected, and an agent failing every other poll logged a warning (and
        recorded two events) every other second. Silence then says it if no good sample follows, with this reason.
        """
        self._failed(node, error, by_agent=True)

    def samples_missed(self, node: str, count: int) -> None:
        """`node`'s agent dropped `count` samples while the controller did not read (`SampleSink.samples_missed`): `dropped`."""
        with self._lock:
            self.counters["dropped"] += count

    def link_failed(self, node: str, error: NodeError) -> None:
        """A link broke or could not be made (ignored once shutting down: we are the ones closing it)."""
        self._failed(node, error, by_agent=False)

    def link_connected(self, node: str) -> None:
        """A link connected again (`SampleSink.link_connected`): the failure before it no longer says why the node is silent."""
        with self._lock:
            health = self._health.get(node)
            if health is not None:
                health.connected()

    def _failed(self, node: str, error: NodeError, by_agent: bool) -> None:
        with self._lock:
            health = self._health.get(node)
            if health is None or self._closing:
                return
            before, now = health.message, self._now()
            if by_agent:
                change = health.sample_failed(now, error.kind, error.message)
            else:
                change = health.failed(now, error.kind, error.message)
            if change is not None:
                self._note(change)  # which logs it: "n1 is down: ..."
            # the same failure again (debug: 2,000 nodes retry, an agent sends its error each sample), or an agent's
            # failed sample on a node still up (silence says it if it lasts)
            quiet = error.message == before or (by_agent and health.state == "up")
            if change is None:  # a blip on a node still up, or the same failure again
                self._said.failure(node, error.message, logging.DEBUG if quiet else logging.WARNING)
        self.counters["link_failures"] += 1

    def _note(self, change: NodeState) -> None:
        """Record a change (call with the lock): its event, and its log line ("n1 is down: ..."), folded per tick."""
        self._changes.append(change)
        self._events.append(state_event(change))
        self._said.change(change)

    # ------------------------------------------------------------------ writing

    def up_count(self) -> int:
        """How many tracked nodes are up (the controller asks every second: no state copied for it)."""
        with self._lock:
            return sum(1 for health in self._health.values() if health.state == "up")

    def states(self) -> dict[str, NodeState]:
        """Every tracked node's current state."""
        with self._lock:
            return {n: NodeState(n, h.state, h.since, h.last_seen, h.error, h.message) for n, h in self._health.items()}

    def flush(self, retry_now: bool = False) -> int:
        """Write what arrived since the last tick; returns raw rows stored (0 when the store refused).

        After a refused write the next is tried only once its wait is over (`RETRY_MAX_S`), unless `retry_now`
        (the last flush, at stop); until then the tick's samples join the buffer, which drops the oldest.
        """
        incoming, changes, events, now = self._take_tick()
        if self.damaged is not None:
            self._buffer.discard(len(incoming))
            return 0
        self._add_to_buffer(incoming, events, now)
        if not retry_now and self._wall.monotonic() < self._retry_at:
            self._keep_for_next(changes, events)
            return 0
        self._save_steps()
        if not self._buffer and not changes and not events:
            return 0
        try:
            inserted, batch = write_batch(self.store, self._buffer, self._buffer.batch(), changes, events, now)
        except StoreDamaged as exc:
            self.counters["store_errors"] += 1
            self.store_error = self.damaged = exc
            self._buffer.discard()
            return 0
        except StoreError as exc:
            self._store_failed(exc, changes, events)
            return 0
        except Exception:  # a bug: the thread's catch-all logs it
            self._not_written(changes, events)
            raise
        self._written(inserted, batch)
        self._retry_wait_s, self._retry_at, self._put_back = 0.0, float("-inf"), False
        return inserted

    def _take_tick(self) -> tuple[list[NodeSample], list[NodeState], list[Event], float]:
        """Judge every node's silence now, and take what arrived since the last tick: samples, changes, events."""
        with self._lock:
            now, stalled = self._now(), self._stalled_since_judged()
            for health in self._health.values() if not self._closing else ():
                if stalled:
                    health.excuse(now)
                change = health.tick(now)
                if change is not None:
                    self._note(change)
            incoming, self._incoming = self._incoming, []
            changes, self._changes = self._changes, []
            events, self._events = self._events, []
            said = self._said.take()
        self._said.write(said)  # the lines of the changes above, folded ("g[0201-2000] (1800) are down: ...")
        return incoming, changes, events, now

    def _stalled_since_judged(self) -> bool:
        """Whether the controller itself was stalled since silence was last judged (call with the lock)."""
        judged, self._judged_at = self._judged_at, self._wall.monotonic()
        if self._stall_watch is not None:
            since = self._stall_watch.silence_from(judged)
            self._judged_at = max(self._judged_at, since)  # noticed at this tick: not again at the next one
            return since > judged
        return False

    def _add_to_buffer(self, incoming: list[NodeSample], events: list[Event], now: float) -> None:
        """Add the new samples to the buffer in time order, with the GPU events they show; trim it to `buffer_s`."""
        incoming.sort(key=lambda s: s.time)
        for sample in incoming:
            before = self._previous.get(sample.node)
            try:
                found = self._thermal.keep(gpu_events(before, sample), sample)
                sample = carry_forward(before, sample)
            except (TypeError, ValueError, OverflowError) as exc:  # a value of the wrong type: see `write_batch`
                self._buffer.drop_unstorable(sample, str(exc))
                continue
            events.extend(self._said.gpu(found))  # and their log lines, folded (`write_gpu`)
            self._previous[sample.node] = sample
            self._buffer.add(sample, self._slow_due(sample))
        self._buffer.trim(now)
        self._said.write_gpu()

    def _written(self, inserted: int, batch: list[Buffered]) -> None:
        """The store took `batch` (`inserted` raw rows of it new): empty the buffer and count it."""
        done = self._clock()
        self._buffer.written()
        with self._lock:  # `_stepped` moves the latencies (on a link's thread, under the lock)
            self._stats.written(batch, inserted, done)
        if self.store_error is not None:
            log.warning("the store accepts writes again; %d buffered samples written", len(batch))
            self.store_error = None

    def _save_steps(self) -> None:
        """Keep the clock's forward steps in the store when they changed (retention after a restart needs them)."""
        with self._lock:
            steps = self._wall.to_save()
        if steps is None:
            return
        try:
            self.store.save_clock_steps(steps)
        except StoreError:  # the batch's write reports the store's trouble; these are tried again next tick
            with self._lock:
                self._wall.not_saved()

    def _slow_due(self, sample: NodeSample) -> bool:
        last = self._last_slow.get(sample.node)
        if last is None or sample.time - last >= self.slow_interval_s - self.interval_s / 2 or sample.time < last:
            self._last_slow[sample.node] = sample.time
            return True
        return False

    def _keep_for_next(self, changes: list[NodeState], events: list[Event]) -> None:
        """Put the tick's state changes and events back, ahead of the newer ones, for the next write."""
        with self._lock:
            self._changes[:0] = changes
            self._events[:0] = events

    def _not_written(self, changes: list[NodeState], events: list[Event]) -> None:
        """A failed write's changes and events are kept for one more write; failing again, dropped and said.

        Kept for ever, one that cannot be written among them would fail every later write, every node's with it.
        """
        self._put_back = not self._put_back
        if self._put_back:
            self._keep_for_next(changes, events)
        else:
            log.error("store writer: %d state changes and %d events failed twice; dropped", len(changes), len(events))

    def _store_failed(self, exc: StoreError, changes: list[NodeState], events: list[Event]) -> None:
        """The store refused the write: keep everything for the next attempt, after a longer wait, and say it."""
        self._keep_for_next(changes, events)
        self.counters["store_errors"] += 1
        self._retry_wait_s = min(max(self._retry_wait_s * 2, self._tick_s()), RETRY_MAX_S)
        self._retry_at = self._wall.monotonic() + self._retry_wait_s
        now = self._clock()
        if self.store_error is None or now - self._last_error_log >= 60:
            log.error(
                "%s Up to %g s of samples are kept in memory and written when it accepts writes again.%s",
                exc.message,
                self.buffer_s,
                daemon_hint(exc),
            )
            self._last_error_log = now
        self.store_error = exc

    # ------------------------------------------------------------------ thread and figures

    def start(self) -> None:
        """Flush a few times per interval (at least every 0.25 s) on a thread.

        A machine out of threads is said so here, naming the cause and the limit to raise, rather than failing later in
        `stop`.
        """
        thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:
            if not is_thread_exhaustion(exc):
                raise
            raise FactoryError(
                "this machine has no thread left for the controller's store writer (can't start new thread).",
                f"{TASK_LIMIT_HINT} or watch fewer nodes.",
            ) from exc
        self._thread = thread

    def _tick_s(self) -> float:
        """Seconds between two flushes: a few per interval, at least every `FLUSH_EVERY_MAX_S`."""
        return min(self.interval_s / 4, FLUSH_EVERY_MAX_S)

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s()):
            try:
                self.flush()
            except Exception:  # never let one bad batch end collection
                log.exception("store writer: unexpected failure")

    def begin_shutdown(self) -> None:
        """Stop judging node health: while the links close, missed samples and broken links are not the nodes'."""
        with self._lock:
            self._closing = True

    def stop(self) -> None:
        """Stop the thread after a last flush; what the store still refused then is dropped (and counted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.flush(retry_now=True)  # a store that has room again takes the buffer, whatever the wait left
        with self._lock:
            late, self._incoming = len(self._incoming), []
        self._buffer.discard(late)

    def stats(self) -> dict[str, Any]:
        """Counters, and sample-to-store latency percentiles (seconds) over the last minute (`WriterStats.report`)."""
        now = self._clock()
        with self._lock:
            latencies = list(self._stats.latencies)
        error = self.store_error.message if self.store_error else None
        return self._stats.report(latencies, now, len(self._buffer), error)
