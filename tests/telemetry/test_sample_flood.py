"""A node sending samples far faster than the interval it was asked for is thinned, not stored sample by sample.

A hostile agent streaming a sample every millisecond (each stamped 1 ms after the last) stored 19,451 rows in 20 s
against 38 for a normal node, and store latency grew to seconds for every node. The writer now keeps a node's sample
only when its own time is far enough from the last kept (telemetry/thinning.py), counting the rest as dropped; a
backlog read at once (samples an interval apart) is still stored whole (test_writer_clocks.py has the minute-long one).
"""

from __future__ import annotations

import itertools

from clocks import T0, Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.writer import StoreWriter


def stored_times(store: Store, node: str, clocks: Clocks) -> list[float]:
    return [row["time"] for row in store.export([node], T0 - 1, clocks.wall + 3600)]


def test_a_node_flooding_samples_a_millisecond_apart_is_thinned(store: Store, clocks: Clocks) -> None:
    writer = writer_for(store, clocks, ["evil", "good"])
    evil_time = clocks.wall
    for _ in range(20):  # 20 s: the good node sends one sample a second, the evil one a thousand
        writer.offer(sample("good", clocks.wall))
        for _ in range(1000):
            evil_time += 0.001
            writer.offer(sample("evil", evil_time))
            clocks.tick(0.001)
        writer.flush()
    assert len(stored_times(store, "good", clocks)) == 20
    evil = stored_times(store, "evil", clocks)
    # its burst budget once (120 s of samples, a backlog's), then one per 0.4 s at most, never closer than 0.1 s
    assert len(evil) <= (120 + 2) + 20 / 0.4 + 1
    assert min(b - a for a, b in itertools.pairwise(evil)) >= 0.1 - 1e-6
    stats = writer.stats()
    assert stats["thinned"] == 20_000 - len(evil)
    assert stats["dropped"] == stats["thinned"]
    assert stats["samples"] == 20 + len(evil)


def test_times_jumping_back_and_forth_are_held_to_the_budget(store: Store, clocks: Clocks) -> None:
    """Each sample far from the last passes the spacing test; the budget bounds them (a buffer's backlog, then 2.5/s)."""
    writer = writer_for(store, clocks, ["evil"])
    for k in range(10_000):  # all at once: no time passes
        writer.offer(sample("evil", clocks.wall - (k % 2) * 1000 - k * 0.000_001))
    writer.flush()
    assert writer.stats()["samples"] <= 120 + 2
    clocks.tick(10.0)
    for k in range(1000):
        writer.offer(sample("evil", clocks.wall - (k % 2) * 1000 - k * 0.000_001))
    writer.flush()
    assert writer.stats()["samples"] <= 120 + 2 + 10 / 0.4 + 1


def test_a_backlog_of_two_minutes_read_at_once_is_stored_whole(store: Store, clocks: Clocks) -> None:
    """A controller stalled for the writer's whole buffer (120 s) reads that many samples at once: none is thinned."""
    writer = writer_for(store, clocks, ["n1"])
    writer.offer(sample("n1", clocks.wall))
    writer.flush()
    sent = clocks.wall
    clocks.tick(119.5)
    for k in range(1, 120):
        writer.offer(sample("n1", sent + k))
    writer.flush()
    assert stored_times(store, "n1", clocks) == [sent + k for k in range(120)]
    assert writer.stats()["thinned"] == 0


def test_a_sample_after_a_slow_read_is_kept(store: Store, clocks: Clocks) -> None:
    """Stamped once its GPUs are read, a sample after a slow-tier read (60 ms more at a 0.1 s interval) came 40 ms
    after the one before: 0.4 of an interval thinned it (a code review)."""
    writer = StoreWriter(store, interval_s=0.1, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    writer.set_nodes(["n1"])
    due = clocks.wall
    for k in range(200):
        late = 0.07 if k % 5 == 0 else 0.01  # every fifth reads the slow tier too
        writer.offer(sample("n1", due + late))
        clocks.tick(0.1)
        due += 0.1
    writer.flush()
    assert writer.stats()["thinned"] == 0


def test_a_backlog_longer_than_the_buffer_keeps_its_newest_120_s(store: Store, clocks: Clocks) -> None:
    """A stall of 150 s read at once: what is past the buffer is dropped (counted), the newest 120 s all stored.

    The oldest samples spent the burst budget before being trimmed for their age, so the newest were thinned: a
    150 s stall stored 106 s over local links and 90 s over SSH, with a gap at both ends (a stall review).
    """
    writer = writer_for(store, clocks, ["n1"])
    writer.offer(sample("n1", clocks.wall))
    writer.flush()
    sent = clocks.wall
    clocks.tick(150.0)
    for k in range(1, 151):
        writer.offer(sample("n1", sent + k))
    writer.flush()
    stored = stored_times(store, "n1", clocks)
    assert stored[1:] == [sent + k for k in range(30, 151)]  # sent + 30 is 120 s old: kept
    stats = writer.stats()
    assert (stats["thinned"], stats["dropped"]) == (0, 29)


def test_a_node_whose_samples_are_too_old_to_keep_is_still_heard(store: Store, clocks: Clocks) -> None:
    """Dropping a sample past the buffer as it arrives must not make its node look silent (a code re-read)."""
    writer = writer_for(store, clocks, ["late"])
    writer.offer(sample("late", clocks.wall - 300))
    writer.flush()
    assert writer.states()["late"].state == "up"
    assert writer.stats()["dropped"] == 1
