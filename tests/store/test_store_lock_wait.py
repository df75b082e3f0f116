"""A store locked by another writer is waited for in slices, so a signal or a stop does not wait the 10 s out.

SQLite's own busy wait runs in C, where no Python signal handler runs: a controller's SIGTERM waited each 10 s
write out (68 s in all, past systemd's TimeoutStopSec=30), `power set` and `nodes drain` 9 s. The lock here is held
by another process, as another factoryctl would.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from factoryctl.store import lock_wait
from factoryctl.store.sqlite import Store, StoreError

HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
"""


class Alarm(Exception):
    """Raised by the test's SIGALRM handler, as the CLI's SIGTERM handler raises `Terminated`."""


@pytest.fixture(autouse=True)
def _waits_again() -> Iterator[None]:
    lock_wait.wait_for_locks_again()  # whatever a test before this one left
    yield
    lock_wait.wait_for_locks_again()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "factory.db")
    yield opened
    opened.close()


@contextlib.contextmanager
def locked_by_another_process(path: Path, release_after_s: float | None = None) -> Iterator[None]:
    """`path` locked by a writer in another process; released after `release_after_s`, else at the block's end."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    release = threading.Timer(release_after_s or 0.0, holder.stdin.close)
    try:
        assert holder.stdout.readline() == "held\n"
        if release_after_s is not None:
            release.start()
        yield
    finally:
        release.cancel()
        holder.kill()
        holder.wait(timeout=10)


def test_a_signal_handler_runs_while_a_write_waits_for_the_lock(store: Store) -> None:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Alarm

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with locked_by_another_process(store.path):
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Alarm):
                store.set_meta("key", "value")
            waited = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert waited < 1.5  # SQLite's own wait: 10 s
    store.set_meta("key", "value")  # no transaction was left open by the interrupted wait
    assert store.get_meta("key") == "value"


def test_a_stop_ends_the_wait_of_a_write_on_another_thread(store: Store) -> None:
    failures: list[BaseException] = []

    def write() -> None:
        try:
            store.set_meta("key", "value")
        except BaseException as exc:
            failures.append(exc)

    with locked_by_another_process(store.path):
        writer = threading.Thread(target=write)
        started = time.monotonic()
        writer.start()
        time.sleep(0.3)
        lock_wait.stop_waiting_for_locks(grace_s=0.2)
        writer.join(timeout=12)
        waited = time.monotonic() - started
    assert waited < 1.5
    assert len(failures) == 1
    assert isinstance(failures[0], StoreError)
    assert re.search(r"stayed locked by another writer for 0\.[4-9] s", failures[0].message)
    with locked_by_another_process(store.path):  # the next write, stop requested, does not wait the 10 s either
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"stayed locked by another writer for 0\.[1-3] s"):
            store.set_meta("key", "value")
        assert time.monotonic() - started < 0.5


def test_a_lock_released_within_the_busy_timeout_is_still_waited_for(store: Store) -> None:
    with locked_by_another_process(store.path, release_after_s=0.6):
        started = time.monotonic()
        store.set_meta("key", "value")  # many slices: SQLite alone would give up after the first
        assert time.monotonic() - started >= 0.5
    assert store.get_meta("key") == "value"


def test_a_store_nobody_holds_is_written_once_a_stop_is_requested(store: Store) -> None:
    lock_wait.stop_waiting_for_locks(grace_s=0.0)
    store.set_meta("key", "value")  # the stop's last writes: the flush, the figures, the stop event
    assert store.get_meta("key") == "value"
