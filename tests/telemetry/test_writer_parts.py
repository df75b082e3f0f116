"""The store writer's parts on their own: the retry buffer, the clock correction and the figures.

No store and no links: each part is driven directly with hand-made samples and hand-moved clocks
(tests/clocks.py), as the writer drives it.
"""

from __future__ import annotations

import collections
import logging

import pytest
from clocks import T0, Clocks, sample

from factoryctl.model.telemetry import GpuSample, NodeSample, XidEvent
from factoryctl.telemetry.clock_correction import ClockCorrection
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S, CLOCK_TRUST_S, NodeClock
from factoryctl.telemetry.wall_clock import CLOCK_STEP_S
from factoryctl.telemetry.write_buffer import DROP_LOG_EVERY_S, WriteBuffer
from factoryctl.telemetry.writer_stats import LATENCY_WINDOW_S, WriterStats

HOUR = 3600.0

# ------------------------------------------------------------------ WriteBuffer


def buffer_on(clocks: Clocks, buffer_s: float = 10.0) -> tuple[WriteBuffer, collections.Counter[str]]:
    counters = collections.Counter[str]()
    return WriteBuffer(buffer_s, counters, lambda: clocks.wall), counters


def test_the_batch_is_every_sample_held_oldest_first_until_written() -> None:
    buffer, counters = buffer_on(Clocks())
    for t in range(3):
        buffer.add(sample("n1", T0 + t), slow=t == 0)
    assert buffer.batch() == [(sample("n1", T0), True), (sample("n1", T0 + 1), False), (sample("n1", T0 + 2), False)]
    assert buffer.batch() == buffer.batch()  # refused: the same batch is tried again next tick
    buffer.written()
    assert (len(buffer), buffer.batch(), counters["dropped"]) == (0, [], 0)


def test_a_full_buffer_drops_and_counts_its_oldest_samples() -> None:
    buffer, counters = buffer_on(Clocks(), buffer_s=10.0)
    for t in range(15):
        buffer.add(sample("n1", T0 + t), slow=False)
    buffer.trim(T0 + 14)  # holds [T0 + 4, T0 + 14]
    assert [s.time - T0 for s, _ in buffer.batch()] == list(range(4, 15))
    assert counters["dropped"] == 4
    buffer.trim(T0 + 14)
    assert counters["dropped"] == 4  # nothing more to drop


def test_discarding_counts_what_was_held_and_what_never_joined() -> None:
    buffer, counters = buffer_on(Clocks())
    buffer.add(sample("n1", T0), slow=False)
    buffer.add(sample("n2", T0), slow=False)
    buffer.discard(more=3)
    assert (len(buffer), counters["dropped"]) == (0, 5)


def test_an_unstorable_sample_is_counted_and_said_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clocks = Clocks()
    buffer, counters = buffer_on(clocks)
    with caplog.at_level(logging.WARNING, "factoryctl.telemetry"):
        for _ in range(3):
            buffer.drop_unstorable(sample("bad", clocks.wall), "power_w is a str")
            clocks.tick(DROP_LOG_EVERY_S / 2)
    assert (counters["dropped"], counters["unstorable"]) == (3, 3)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "bad: a sample cannot be stored (power_w is a str); dropped it and stored the others (1 dropped so far).",
        "bad: a sample cannot be stored (power_w is a str); dropped it and stored the others (3 dropped so far).",
    ]


def test_a_step_back_of_the_clock_does_not_silence_the_drop_line(caplog: pytest.LogCaptureFixture) -> None:
    clocks = Clocks()
    buffer, _ = buffer_on(clocks)
    with caplog.at_level(logging.WARNING, "factoryctl.telemetry"):
        buffer.drop_unstorable(sample("bad", clocks.wall), "x")
        clocks.wall -= HOUR
        buffer.clock_stepped(-HOUR)
        clocks.tick(DROP_LOG_EVERY_S)
        buffer.drop_unstorable(sample("bad", clocks.wall), "x")
    assert len(caplog.records) == 2


def test_keep_only_leaves_the_storable_ones_in_order() -> None:
    buffer, counters = buffer_on(Clocks())
    kept = [(sample("n1", T0), True), (sample("n3", T0 + 2), False)]
    for s in (kept[0], (sample("n2", T0 + 1), False), kept[1]):
        buffer.add(*s)
    buffer.keep_only(kept)
    assert buffer.batch() == kept
    assert counters["dropped"] == 0  # `drop_unstorable` counts the others


# ------------------------------------------------------------------ ClockCorrection


class Skews:
    def __init__(self) -> None:
        self.said: list[tuple[str, bool, float]] = []

    def __call__(self, node: str, clock: NodeClock, now: float) -> None:
        self.said.append((node, clock.off, now))


def correction_on(clocks: Clocks) -> tuple[ClockCorrection, Skews]:
    skews = Skews()
    return ClockCorrection(lambda: clocks.wall, lambda: clocks.mono, [], skews), skews


def offered(correction: ClockCorrection, clocks: Clocks, s: NodeSample) -> NodeSample:
    now, _ = correction.wall.read()
    return correction.on_our_clock(s, now)


def test_a_node_in_step_keeps_its_samples() -> None:
    clocks = Clocks()
    correction, skews = correction_on(clocks)
    for _ in range(5):
        s = sample("n1", clocks.wall - 0.1)
        assert offered(correction, clocks, s) is s
        clocks.tick(1.0)
    assert skews.said == []


def test_a_node_an_hour_ahead_is_restamped_on_our_clock() -> None:
    clocks = Clocks()
    correction, _ = correction_on(clocks)
    s = sample("ahead", clocks.wall + HOUR)
    moved = offered(correction, clocks, s)
    assert moved.time == pytest.approx(clocks.wall, abs=0.01)
    assert moved.gpus == s.gpus


def test_a_node_behind_is_restamped_once_its_samples_are_trusted() -> None:
    clocks = Clocks()
    correction, _ = correction_on(clocks)
    first = sample("behind", clocks.wall - HOUR)
    assert offered(correction, clocks, first) is first  # a backlog read at once looks behind too
    clocks.tick(CLOCK_TRUST_S)
    moved = offered(correction, clocks, sample("behind", clocks.wall - HOUR))
    assert moved.time == pytest.approx(clocks.wall, abs=0.01)


def test_the_xids_move_with_their_sample_and_keep_their_first_time() -> None:
    clocks = Clocks()
    correction, _ = correction_on(clocks)
    xid = XidEvent(79, clocks.wall + HOUR - 0.5)

    def with_xid(t: float) -> NodeSample:
        return NodeSample("ahead", t, gpus=(GpuSample("ahead", 0, uuid="GPU-a", xid_events=(xid,)),))

    moved = offered(correction, clocks, with_xid(clocks.wall + HOUR))
    first = moved.gpus[0].xid_events[0]
    assert first.time == pytest.approx(clocks.wall - 0.5, abs=0.01)
    clocks.tick(1.0)
    again = offered(correction, clocks, with_xid(clocks.wall + HOUR - 0.2))  # a better estimate: moved less
    assert again.gpus[0].xid_events == (first,)


def test_a_node_off_for_long_enough_is_said_once() -> None:
    clocks = Clocks()
    correction, skews = correction_on(clocks)
    for _ in range(int(CLOCK_REPORT_AFTER_S) + 10):
        offered(correction, clocks, sample("ahead", clocks.wall + HOUR))
        clocks.tick(1.0)
    assert [(node, off) for node, off, _ in skews.said] == [("ahead", True)]


def test_a_step_of_our_clock_moves_every_estimate() -> None:
    clocks = Clocks()
    correction, _ = correction_on(clocks)
    offered(correction, clocks, sample("ahead", clocks.wall + HOUR))
    clocks.tick(1.0)
    clocks.wall += 100.0  # our clock steps ahead; the node's keeps going
    now, step = correction.wall.read()
    assert step is not None
    assert step.seconds == pytest.approx(100.0)
    assert abs(step.seconds) >= CLOCK_STEP_S
    correction.controller_stepped(step.seconds)
    moved = correction.on_our_clock(sample("ahead", clocks.wall - 100.0 + HOUR), now)
    assert moved.time == pytest.approx(now, abs=0.01)  # on the stepped clock


def test_a_round_trip_bound_keeps_a_late_node_in_step() -> None:
    """Samples an hour late, but the node's own answer says its clock is right: nothing is restamped."""
    clocks = Clocks()
    correction, _ = correction_on(clocks)
    correction.bounded("late", 0.0)  # not known yet: ignored
    first = sample("late", clocks.wall - HOUR)
    offered(correction, clocks, first)
    correction.bounded("late", 0.1)
    clocks.tick(CLOCK_TRUST_S)
    late = sample("late", clocks.wall - HOUR)
    assert offered(correction, clocks, late) is late


def test_a_forgotten_node_starts_afresh() -> None:
    """A node removed by a reload and added back is judged, and said, anew: nothing of its old estimate is kept."""
    clocks = Clocks()
    correction, skews = correction_on(clocks)
    for _ in range(2):
        for _ in range(int(CLOCK_REPORT_AFTER_S) + 10):
            offered(correction, clocks, sample("ahead", clocks.wall + HOUR))
            clocks.tick(1.0)
        correction.forget("ahead")
    assert [(node, off) for node, off, _ in skews.said] == [("ahead", True), ("ahead", True)]


# ------------------------------------------------------------------ WriterStats


def test_written_batches_are_counted() -> None:
    stats = WriterStats()
    two_gpus = NodeSample("n1", T0, gpus=(GpuSample("n1", 0), GpuSample("n1", 1)))
    stats.written([(two_gpus, True), (sample("n2", T0), False)], inserted=2, done=T0 + 0.5)
    report = stats.report(list(stats.latencies), T0 + 1, pending=0, store_error=None)
    assert {k: report[k] for k in ("samples", "rows", "duplicates")} == {"samples": 2, "rows": 2, "duplicates": 1}
    assert report["latency_p50_s"] == pytest.approx(0.5)


def test_dropped_includes_the_thinned_samples() -> None:
    stats = WriterStats()
    stats.counters["dropped"] += 2
    stats.counters["thinned"] += 3
    report = stats.report([], T0, pending=7, store_error="full")
    assert (report["dropped"], report["thinned"], report["pending"], report["store_error"]) == (5, 3, 7, "full")
    assert report["latency_p50_s"] is None
    assert report["latency_p99_s"] is None


def test_percentiles_are_over_the_last_window_only() -> None:
    stats = WriterStats()
    stats.written([(sample("n1", T0 - 10.0), False)], inserted=1, done=T0)  # 10 s late, stored at T0
    stats.written([(sample("n1", T0 + 99.9), False)], inserted=1, done=T0 + 100)
    report = stats.report(list(stats.latencies), T0 + 100, pending=0, store_error=None)
    assert T0 < T0 + 100 - LATENCY_WINDOW_S
    assert (report["latency_p50_s"], report["latency_p99_s"]) == pytest.approx((0.1, 0.1))


def test_a_step_moves_the_latencies_with_the_clock() -> None:
    stats = WriterStats()
    stats.written([(sample("n1", T0 - 0.2), False)], inserted=1, done=T0)
    stats.clock_stepped(-HOUR)
    ((at, late),) = stats.latencies
    assert (at, late) == (T0 - HOUR, pytest.approx(0.2))
    assert stats.counters["clock_steps"] == 1
    report = stats.report(list(stats.latencies), T0 - HOUR + 1, pending=0, store_error=None)
    assert report["latency_p50_s"] == pytest.approx(0.2)  # still in the window on the stepped clock
