"""The store writer's node-clock estimates and clock-step bookkeeping, with both clocks injected and a real store.

A node a day ahead had its first 2 s of samples stored a day in the future (and again 2 s after every step of the
controller's clock, which started every estimate over); the latency figures were moved by a step on a link's thread
while the writer's thread added to them outside the lock; forward steps were forgotten by a restart, so rows
stamped before a +1 day step were pruned at once after it.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
from clocks import Clocks, sample, writer_for
from store_rows import rows

from factoryctl.store.sqlite import Store

DAY = 86400.0


def stored_offsets(store: Store, clocks: Clocks) -> list[float]:
    """Each stored row's time less the controller's clock now, oldest first."""
    return [round(t / 1000 - clocks.wall, 1) for (t,) in rows(store.path, "SELECT t_ms FROM sample ORDER BY t_ms")]


def test_a_node_a_day_ahead_is_stored_on_the_controller_clock_from_its_first_sample(
    store: Store, clocks: Clocks
) -> None:
    writer = writer_for(store, clocks, ["ahead"])
    for _ in range(3):
        writer.offer(sample("ahead", clocks.wall + DAY + 0.01))  # no delay makes a sample look early
        writer.flush()
        clocks.tick(1.0)
    assert stored_offsets(store, clocks) == [-3.0, -2.0, -1.0]


def test_a_step_of_the_controller_clock_moves_a_node_estimate_instead_of_starting_over(
    store: Store, clocks: Clocks
) -> None:
    writer = writer_for(store, clocks, ["ahead"])
    node_off = 3600.01
    for _ in range(5):
        writer.offer(sample("ahead", clocks.wall + node_off))
        writer.flush()
        clocks.tick(1.0)
    clocks.wall += 10.0  # the controller's clock steps ahead; the node's keeps going
    node_off -= 10.0
    for _ in range(3):
        writer.offer(sample("ahead", clocks.wall + node_off))
        writer.flush()
        clocks.tick(1.0)
    assert stored_offsets(store, clocks)[-3:] == [-3.0, -2.0, -1.0]  # on the stepped clock, not an hour ahead


def test_latencies_are_added_under_the_lock_a_step_moves_them_with(store: Store, clocks: Clocks) -> None:
    """`_stepped` rebuilds them on a link's thread, under the lock: adding outside it raised 'deque mutated'."""
    writer = writer_for(store, clocks, ["n1"])

    class LockChecked(collections.deque[tuple[float, float]]):
        def extend(self, items: Any) -> None:
            assert writer._lock.locked(), "latencies added without the writer's lock"
            super().extend(items)

    writer._stats.latencies = LockChecked(maxlen=100_000)
    writer.offer(sample("n1", clocks.wall))
    writer.flush()
    assert len(writer._stats.latencies) == 1


def test_a_step_is_allowed_for_once_even_if_moving_the_bookkeeping_failed(store: Store, clocks: Clocks) -> None:
    writer = writer_for(store, clocks, ["n1"])
    writer.offer(sample("n1", clocks.wall))
    writer.flush()

    class FailsOnce(collections.deque[tuple[float, float]]):
        failed = False

        def __iter__(self) -> Any:
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise RuntimeError("deque mutated during iteration")
            return super().__iter__()

    writer._stats.latencies = FailsOnce(writer._stats.latencies, maxlen=100_000)
    clocks.wall += 100.0
    with pytest.raises(RuntimeError):
        writer.flush()
    since = writer.states()["n1"].since
    writer.offer(sample("n1", clocks.wall))
    assert writer.states()["n1"].since == since  # not moved by the same step twice


def test_forward_steps_outlive_a_restart(store: Store, clocks: Clocks) -> None:
    writer = writer_for(store, clocks, ["n1"])
    writer.flush()
    before = clocks.wall
    clocks.wall += DAY
    writer.flush()
    assert writer.clock_steps() == [(before, DAY)]
    writer.stop()
    again = writer_for(store, clocks, ["n1"])  # the controller restarted
    assert again.clock_steps() == [(before, DAY)]
    again.forget_steps([(before, DAY)])  # retention is past it (`steps_in_force`)
    again.flush()
    assert writer_for(store, clocks, ["n1"]).clock_steps() == []
