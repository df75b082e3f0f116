"""A drain waiting for a store another process holds locked never holds up the dashboard's refresh.

The drain wrote on the connection the snapshot reads, and calls on one connection take turns: while another writer
held SQLite's lock, the drain waited for it (up to the 10 s busy timeout) and every snapshot waited behind it, so the
whole display froze. The actions now write on a connection of their own. Real SQLite store; the lock is a second
process's `BEGIN IMMEDIATE` as any other writer takes it.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factoryctl.demo import demo_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.store import open_store


@pytest.fixture
def config(tmp_path: Path):
    config = demo_config(tmp_path / "state")
    open_store(config.store_path).close()
    return config


@pytest.fixture
def locked(config) -> Iterator[sqlite3.Connection]:
    """The store's write lock, held by another connection until the test commits (or ends)."""
    db = sqlite3.connect(config.store_path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    yield db
    db.close()


def waiting_for_the_lock(thread: threading.Thread) -> bool:
    """Whether `thread` is in the store's wait for a locked database (`execute_waiting`)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "execute_waiting":
            return True
        frame = frame.f_back
    return False


def drain_while_locked(locked: sqlite3.Connection, drain: Callable[[], None], read: Callable[[], object]) -> None:
    """Start `drain` on a worker thread; once it waits for the lock, `read` returns while it still waits."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            drain()
        except BaseException as exc:  # said by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    while worker.is_alive() and not waiting_for_the_lock(worker):
        worker.join(0.005)
    assert worker.is_alive(), f"the drain did not wait for the lock: {errors}"
    read()
    assert worker.is_alive(), "the read waited for the drain, which waited for the lock"
    locked.execute("COMMIT")
    worker.join()
    assert errors == []


def test_a_snapshot_does_not_wait_for_a_drain_waiting_for_the_lock(config, locked: sqlite3.Connection) -> None:
    services = StoreServices(config)
    try:
        services.snapshot()
        drain_while_locked(locked, lambda: services.drain("demo01", "cabling"), services.snapshot)
        assert services.snapshot().drained == frozenset({"demo01"})
    finally:
        services.close()


def test_the_collectors_snapshot_reads_do_not_wait_for_a_drain(config, locked: sqlite3.Connection) -> None:
    services = PolledServices(config)  # not started: its reads of the store are what is waited on
    try:
        drain_while_locked(locked, lambda: services.drain("demo01", "cabling"), lambda: services.node_history("demo01"))
        drained = services.node_history("demo01").events
        assert drained is not None
        assert [e.kind for e in drained] == ["drain"]
    finally:
        services.close()
