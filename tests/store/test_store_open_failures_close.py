"""A store that cannot be opened leaves no SQLite connection behind, whatever stopped the opening.

A dashboard or controller that keeps its last error, or retries every few seconds, would otherwise pile up open
descriptors (and the locks they hold) on a store it could not use until the garbage collector happens to run: the
error's traceback holds the half-made store. Each case breaks the file one way, fails to open it with the collector
off, and counts the descriptors this process still has on it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factoryctl.store import connection, lock_wait
from factoryctl.store.sqlite import SCHEMA_VERSION, Store, StoreDamaged, StoreError


def descriptors_on(path: Path) -> int:
    """How many of this process's open descriptors are on `path` (or its -wal and -shm)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(path))
    return count


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No garbage collection inside: what is still open was left open, not yet freed by chance."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def written_by_newer(path: Path) -> None:
    Store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite file, " * 512)


def migration_fails(path: Path) -> None:
    """Schema 0 with a table the first migration creates: its CREATE TABLE fails."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE meta (key TEXT)")
        db.commit()


def reasons_unreadable(path: Path) -> None:
    """The current schema, but the throttle-reason table (read last while opening) is gone."""
    Store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE throttle_reason")
        db.commit()


#: How each case breaks the file, and what opening it then says to a writer and to a reader.
CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "newer schema": (written_by_newer, "written by a newer factoryctl", "written by a newer factoryctl"),
    "not a database": (not_a_database, "is damaged", "is damaged"),
    "migration fails": (migration_fails, "failed \\(open\\)", "has schema 0"),
    "reasons unreadable": (reasons_unreadable, "failed \\(open\\)", "failed \\(open\\)"),
}


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_store_that_fails_to_open_keeps_no_descriptor(tmp_path: Path, case: str, readonly: bool) -> None:
    breaks, writer_says, reader_says = CASES[case]
    path = tmp_path / "factory.db"
    breaks(path)
    with collector_off():
        errors = []
        for _ in range(3):
            with pytest.raises(StoreError, match=reader_says if readonly else writer_says) as info:
                Store(path, readonly=readonly)
            errors.append(info.value)  # kept, as a caller showing its last error keeps it
        assert descriptors_on(path) == 0
    if case == "not a database":
        assert all(isinstance(error, StoreDamaged) for error in errors)


@contextlib.contextmanager
def held_by_another_process(path: Path) -> Iterator[None]:
    """`path` locked by a writer in another process (SQLite keeps a closed connection's descriptor open while another
    connection of the same process holds a lock on the file, so a holder in this process would hide a leak)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.communicate("", timeout=10)


HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
"""


def test_a_store_locked_by_another_writer_keeps_no_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new store (schema 0, not yet in WAL mode) held by another writer: switching it to WAL times out."""
    monkeypatch.setattr(lock_wait, "BUSY_TIMEOUT_S", 0.2)  # the wait itself: the full 10 s changes nothing here
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.2)  # the wait its error names
    path = tmp_path / "factory.db"
    with held_by_another_process(path), collector_off():
        with pytest.raises(StoreError, match="stayed locked by another writer"):
            Store(path)
        assert descriptors_on(path) == 0
    Store(path).close()  # once the other writer is gone it opens: nothing was left half-made
