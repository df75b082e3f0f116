"""The store on a bad day: a backup moved over it under a running controller, a full disk, a file size limit.

A backup moved into place (`mv restore.tmp factory.db`) under a running controller: the controller exited 1, but its
`factory.db-wal` and `-shm` stayed at the store's name (SQLite neither checkpoints nor deletes them for a store that
moved), so every later opener read the backup with the old store's newest pages laid over it. A bare "disk I/O error"
on a full disk was said in SQLite's words, and `controller status` hid it behind "no controller is running"; a file
size limit met by the controller was only "has stored no sample".
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV
from reaping import reaped
from store_rows import NODE_SAMPLES_SQL, count_while_created, rows
from waiting import wait_for

from factoryctl.store import sqlite_failures
from factoryctl.store.lock import lock_path
from factoryctl.store.rows import STATS_KEY, Event
from factoryctl.store.sqlite import Store
from factoryctl.store.sqlite_failures import Situation, classify


def _backup(path: Path) -> None:
    """A store of its own, cleanly closed (no -wal left): what `cp factory.db backup.db` of a stopped one is."""
    store = Store(path)
    store.add_events([Event(time.time(), "controller_start", "the backup's own event")])
    store.close()
    assert not Path(f"{path}-wal").exists()


@pytest.mark.slow
def test_a_backup_moved_over_the_store_is_read_as_it_is(tmp_path: Path) -> None:
    config, state = tmp_path / "factory.yaml", tmp_path / "state"
    config.write_text(
        f"state_dir: {state}\ncontroller: {{interval_s: 0.5}}\nnodes:\n  n1: {{transport: local, sim: h100-sxm}}\n"
    )
    store, backup = state / "factory.db", tmp_path / "backup.db"
    _backup(backup)
    argv = [*CLI_ARGV, "--config", str(config), "controller", "run"]
    with reaped(subprocess.Popen(argv, stderr=subprocess.PIPE)) as proc:
        wait_for(lambda: count_while_created(store, NODE_SAMPLES_SQL, "n1") >= 4, timeout=60, what="samples")
        shutil.copyfile(backup, state / "restore.tmp")
        (state / "restore.tmp").rename(store)  # mv restore.tmp factory.db
        _, err = proc.communicate(timeout=30)
    said = err.decode()
    assert proc.returncode == 1, said
    assert f"the store {store} was replaced while the controller ran; " in said
    aside = Path(f"{store}-wal.replaced-{proc.pid}")
    assert f"set aside as {aside}" in said
    assert aside.stat().st_size > 0  # the replaced file's newest rows
    assert not Path(f"{store}-wal").exists()
    assert not Path(f"{store}-shm").exists()
    assert rows(store, "SELECT message FROM event") == [("the backup's own event",)]
    assert count_while_created(store, NODE_SAMPLES_SQL, "n1") == 0
    assert rows(store, "SELECT value FROM meta WHERE key = ?", STATS_KEY) == []


def _shm_growth_error(path: Path) -> sqlite3.Error:
    """A real "disk I/O error" from SQLite growing a reader's `-shm` index, as on a full disk.

    A full disk needs a mount (root); growing the index past a file size limit fails the same write() the same way
    (SQLITE_IOERR_SHMSIZE), so the limit is set for the moment of the open and put back before the error is said.
    """
    _backup(path)  # a WAL store with no -wal or -shm: the next opener makes its -shm
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))  # the -shm grows to 32 KiB at once
        try:
            db.execute("SELECT COUNT(*) FROM event").fetchall()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite raised nothing")


def test_a_disk_io_error_on_a_full_disk_is_said_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "factory.db"
    error = _shm_growth_error(path)
    assert str(error) == "disk I/O error"
    reader = Situation(path, "open", error, readonly=True, immutable=False, busy_timeout_s=10.0)
    failure = classify(reader)  # the disk this test runs on has room: SQLite's words, as before
    assert failure.message.format(s=reader) == f"the store at {path} failed (open): disk I/O error."
    monkeypatch.setattr(sqlite_failures, "DISK_FULL_BELOW_BYTES", 1 << 62)  # any disk is "full" below 4 EiB free
    reader = Situation(path, "open", error, readonly=True, immutable=False, busy_timeout_s=10.0)
    failure = classify(reader)
    free = os.statvfs(tmp_path)
    blocks = free.f_bfree if os.geteuid() == 0 else free.f_bavail
    assert failure.message.format(s=reader) == (
        f"the disk holding the store at {path} is full ({blocks * free.f_frsize // 1024} KiB free), so it cannot "
        "be opened."
    )
    assert failure.hint == "free disk space, or shorten controller.raw_retention in factory.yaml."


def test_status_with_none_running_names_why_the_store_cannot_be_read(cli: Any, tmp_path: Path) -> None:
    config, state = tmp_path / "factory.yaml", tmp_path / "state"
    config.write_text(f"state_dir: {state}\nnodes: {{n1: {{transport: local}}}}\n")
    Store(state / "factory.db").close()
    with sqlite3.connect(state / "factory.db") as db:  # a newer factoryctl's store: a start would be refused too
        db.execute("PRAGMA user_version = 99")
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert result.stdout.startswith("controller: not running\n")
    assert (
        f"factoryctl: no controller is running on this store, and the store at {state / 'factory.db'} was written "
        "by a newer factoryctl (schema 99, " in result.stderr
    )
    assert "hint: upgrade factoryctl on this machine." in result.stderr
    assert "start it with" not in result.stderr


def test_status_names_the_store_error_in_the_controllers_figures(cli: Any, lock_held: tuple[Path, Path, Any]) -> None:
    config, state, _ = lock_held
    limit = (
        f"the store at {state / 'factory.db'} reached this process's file size limit (1.5 MiB: `ulimit -f`, "
        "systemd's LimitFSIZE=), so the samples were not saved."
    )
    store, now = Store(state / "factory.db"), time.time()
    figures = {"pid": os.getpid(), "nodes": 1, "up": 1, "written_at": now - 2, "store_error": limit}
    store.set_meta(STATS_KEY, json.dumps(figures))  # written since its newest sample: it still writes the store
    store.close()
    os.utime(lock_path(state), (now - 60, now - 60))  # the lock was taken a minute ago
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert f"has stored no sample since it started (60 s, more than 10 s): {limit}\n" in result.stderr
    assert "hint: its log (`journalctl -u factoryctl`) says what to do about it; " in result.stderr


def test_a_lock_that_cannot_be_written_is_said_and_not_left(tmp_path: Path) -> None:
    config, state = tmp_path / "factory.yaml", tmp_path / "state"
    config.write_text(f"state_dir: {state}\nnodes: {{n1: {{transport: local}}}}\n")

    def no_file_may_grow() -> None:  # a real failing write(): EFBIG, as ENOSPC on a full disk fails it
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    done = subprocess.run(
        [*CLI_ARGV, "--config", str(config), "controller", "run"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=no_file_may_grow,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(
        f"factoryctl: cannot write the controller lock {lock_path(state)}: this process's file size limit is "
        "reached (File too large), so the controller does not start.\n"
    ), done.stderr
    assert "hint: raise the limit (`ulimit -f unlimited`" in done.stderr
    assert not lock_path(state).exists()
