"""The writer's latencies are kept for the percentiles' window only (soak, session 23).

All 100,000 were kept while the last minute's alone were used: an hour at 27 nodes grew the controller by 9 MB.
The clock is the `done` time each batch is stored at, as the writer passes it.
"""

from __future__ import annotations

import pytest

from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.writer_stats import LATENCY_WINDOW_S, WriterStats

T0 = 1_700_000_000.0


def _store_every_second(stats: WriterStats, seconds: int, nodes: int) -> None:
    """`nodes` samples stored each second for `seconds` s from T0, each 0.25 s late."""
    for second in range(seconds):
        done = T0 + second
        batch = [(NodeSample(f"n{i}", done - 0.25), False) for i in range(nodes)]
        stats.written(batch, inserted=0, done=done)


def test_latencies_older_than_the_window_are_dropped_as_batches_arrive() -> None:
    stats = WriterStats()
    _store_every_second(stats, seconds=600, nodes=27)  # ten minutes
    last = T0 + 599
    assert len(stats.latencies) == 27 * (int(LATENCY_WINDOW_S) + 1)  # the last minute, its both ends included
    assert min(at for at, _ in stats.latencies) >= last - LATENCY_WINDOW_S


def test_the_percentiles_are_unchanged_by_the_dropping() -> None:
    stats = WriterStats()
    stats.written([(NodeSample("n1", T0 - 30.0), False)], inserted=1, done=T0)  # 30 s late, leaves the window
    _store_every_second(stats, seconds=120, nodes=2)
    report = stats.report(list(stats.latencies), T0 + 119, pending=0, store_error=None)
    assert (report["latency_p50_s"], report["latency_p99_s"]) == pytest.approx((0.25, 0.25))
    assert stats.counters["samples"] == 1 + 240
