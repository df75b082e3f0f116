"""Waiting for a store another writer has locked, so that signal handlers run meanwhile and a stop cuts it short.

SQLite waits for a lock in C (its busy timeout), where Python's signal handlers cannot run: a controller's SIGTERM
with the store locked by another process was acted on only after each write's 10 s wait, 39-68 s in all, past
systemd's TimeoutStopSec. So SQLite waits `LOCK_WAIT_SLICE_S` at a time and `execute_waiting` tries again in
Python up to `BUSY_TIMEOUT_S`; after `stop_waiting_for_locks` (a stop) every wait ends within `STOP_GRACE_S` of it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

BUSY_TIMEOUT_S = 10.0
#: How long SQLite waits in C for a lock before Python looks again (signal handlers, a stop): no cost when unlocked.
LOCK_WAIT_SLICE_S = 0.1
#: Once a stop is requested, how long the writes still to come may wait for the lock, all of them together.
STOP_GRACE_S = 2.0
_SQLITE_BUSY = 5  # sqlite3.SQLITE_BUSY from Python 3.11.? on
_stop_deadline: float | None = None  # `time.monotonic()` when lock waits end, once a stop is requested


def stop_waiting_for_locks(grace_s: float = STOP_GRACE_S) -> None:
    """From now on, wait for a locked store `grace_s` more at most, all waits together: the process is stopping.

    Safe from a signal handler (one assignment: no lock, no I/O). A write that then finds the store still locked fails
    (its error says how long it waited), so what it held is counted as not saved, and the process ends in time.
    """
    global _stop_deadline
    deadline = time.monotonic() + grace_s
    if _stop_deadline is None or deadline < _stop_deadline:
        _stop_deadline = deadline


def wait_for_locks_again() -> None:
    """Undo `stop_waiting_for_locks`: a process that runs on (a test, an in-process controller started again)."""
    global _stop_deadline
    _stop_deadline = None


def _is_busy(exc: sqlite3.Error) -> bool:
    """Whether `exc` is SQLITE_BUSY (any extended code): another connection holds the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF == _SQLITE_BUSY if isinstance(code, int) else "locked" in str(exc)


def execute_waiting(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    """`db.execute`, waiting for a locked store by slices up to `BUSY_TIMEOUT_S` or the stop's deadline.

    SQLite waits `LOCK_WAIT_SLICE_S` in C; between slices Python's signal handlers run (an exception they raise ends
    the wait) and the stop's deadline is looked at. The last `sqlite3.Error` is raised when the wait is over.
    """
    started = time.monotonic()
    while True:
        try:
            return db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            now, stop = time.monotonic(), _stop_deadline
            if now >= started + BUSY_TIMEOUT_S:
                raise
            if stop is not None and now >= stop:  # cut short: `_error` says how long it waited
                exc.waited_s = max(0.1, round(now - started, 1))  # type: ignore[attr-defined]
                raise
            time.sleep(0.01)  # a busy answer SQLite gave without waiting is not spun on
