"""A store that refuses writes is tried again after a wait that doubles up to `RETRY_MAX_S`, not every tick.

Each attempt writes the whole buffer (up to `buffer_s` of every node's samples): tried every tick, a controller of 8
nodes at 0.25 s used 20 times its normal CPU while the store was full. The store here is a real SQLite file made
full by its own page limit (as `tests/store_size_limit.py` does); the attempts are counted by `store_errors`.
"""

from __future__ import annotations

from pathlib import Path

from clocks import Clocks, sample
from store_size_limit import cap_at_current_size

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.writer import RETRY_MAX_S, StoreWriter

NODES = [f"n{i}" for i in range(1, 9)]
INTERVAL = 0.25
TICK = INTERVAL / 4  # the writer's flush period at this interval: the first wait after a refused write


def full_store(path: Path) -> Store:
    """A store whose next write needing a page more fails as a full disk would (SQLite's `max_page_count`)."""
    store = Store(path)
    store.write([sample("n1", 0.0)])
    cap_at_current_size(store)
    return store


def run(writer: StoreWriter, clocks: Clocks, seconds: float) -> int:
    """Flush every tick for `seconds`, every node's sample offered each interval; returns the samples offered."""
    offered = 0
    for tick in range(round(seconds / TICK)):
        clocks.tick(TICK)
        if tick % 4 == 0:
            for node in NODES:
                writer.offer(sample(node, clocks.wall))
                offered += 1
        writer.flush()
    return offered


def test_a_refused_write_is_tried_again_less_and_less_often_then_every_tick_once_taken(tmp_path: Path) -> None:
    store = full_store(tmp_path / "factory.db")
    clocks = Clocks()
    writer = StoreWriter(store, interval_s=INTERVAL, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    writer.set_nodes(NODES)
    offered = run(writer, clocks, 150)  # past the 120 s buffer: the oldest are dropped, and counted
    stats = writer.stats()
    # waits of 1/16, 1/8, ... 4 s, then 8 s: 8 attempts in the first 8 s, then one per 8 s (2,400 ticks here)
    assert 8 + 142 // RETRY_MAX_S - 2 <= stats["store_errors"] <= 8 + 142 // RETRY_MAX_S + 2
    assert stats["samples"] == 0
    assert stats["dropped"] > 0
    assert stats["dropped"] + stats["pending"] == offered

    store._query("PRAGMA max_page_count = 1073741823")  # space again: taken at the next attempt, within 8 s
    offered += run(writer, clocks, RETRY_MAX_S + TICK)
    stats = writer.stats()
    assert (stats["pending"], stats["store_error"]) == (0, None)
    assert stats["samples"] + stats["dropped"] == offered

    cap_at_current_size(store)
    errors = stats["store_errors"]
    for _ in range(round(60 / TICK)):  # until the pages it had left are used
        run(writer, clocks, TICK)
        if writer.stats()["store_errors"] > errors:
            break
    errors = writer.stats()["store_errors"]
    assert errors == stats["store_errors"] + 1
    run(writer, clocks, 1.0)  # the wait starts again from one tick: 1/16, 1/8, 1/4, 1/2 s
    assert writer.stats()["store_errors"] - errors in (4, 5)
    writer.stop()
    store.close()


def test_stopping_while_waiting_to_retry_still_tries_the_last_write(tmp_path: Path) -> None:
    store = full_store(tmp_path / "factory.db")
    clocks = Clocks()
    writer = StoreWriter(store, interval_s=INTERVAL, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    writer.set_nodes(NODES)
    offered = run(writer, clocks, 10)  # refused until the wait has grown to 8 s
    assert writer.stats()["store_errors"] >= 6
    store._query("PRAGMA max_page_count = 1073741823")  # space again, then the controller stops within the wait
    clocks.tick(TICK)
    writer.stop()
    stats = writer.stats()
    assert (stats["samples"], stats["dropped"], stats["pending"]) == (offered, 0, 0)
    store.close()
