"""`telemetry collect` stopped (SIGTERM, Ctrl-C) while it writes a sweep every node answered keeps or says the write.

The stop used to break into the write's transaction (or its wait for the store's lock), which was rolled back: the
whole sweep was lost and the command said only `terminated`. Now the write finishes first, its lock waits cut to the
stopped sweep's few seconds, and the command ends as a stop does (143, 130), saying on stderr what was stored, or,
when the store stayed locked past that, that nothing was. Real agents on the simulated driver (local transport) and a
real signal to a `python -m factoryctl`; another connection holds the store's write lock, so the write waits for it
(the process sleeps in SQLite's busy wait, seen in its wchan) when the signal lands.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for

from factoryctl.store.sqlite import Store

pytestmark = pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs /proc/PID/wchan (Linux)")

STOPS = [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]


def _factory(tmp_path: Path) -> tuple[Path, Path]:
    """Two simulated nodes of 2 GPUs, and their store, created by a first sweep."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  a: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
        "  b: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 4}}\n"
    )
    first = subprocess.run(_collect(path), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    return path, tmp_path / "state" / "factory.db"


def _collect(factory: Path) -> list[str]:
    return [sys.executable, "-m", "factoryctl", "--config", str(factory), "telemetry", "collect"]


def _waits_for_the_lock(proc: subprocess.Popen[str]) -> bool:
    """Whether `proc` sleeps in SQLite's busy wait (or `execute_waiting`'s): nothing else in `collect` sleeps."""
    return "nanosleep" in Path(f"/proc/{proc.pid}/wchan").read_text()  # hrtimer_nanosleep, do_nanosleep


def _sample_count(store_path: Path) -> int:
    store = Store(store_path, readonly=True)
    try:
        return store.count_rows()["sample"]
    finally:
        store.close()


def _stopped_in_the_write(factory: Path, store_path: Path, sig: int, keep_locked: bool) -> tuple[int, str, str]:
    """Run collect with the store locked; once it waits for the lock, send `sig`; release the lock unless kept."""
    holder = sqlite3.connect(store_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        proc = subprocess.Popen(_collect(factory), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(proc):
            wait_for(lambda: _waits_for_the_lock(proc), timeout=60, what="collect waiting for the store's lock")
            proc.send_signal(sig)
            if not keep_locked:
                holder.execute("ROLLBACK")
            out, err = proc.communicate(timeout=60)
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    return proc.returncode, out, err


@pytest.mark.parametrize(("sig", "status", "word"), STOPS)
def test_a_stop_during_the_write_lets_it_finish_and_says_so(tmp_path: Path, sig: int, status: int, word: str) -> None:
    factory, store_path = _factory(tmp_path)
    before = _sample_count(store_path)
    code, out, err = _stopped_in_the_write(factory, store_path, sig, keep_locked=False)
    assert code == status, err
    assert _sample_count(store_path) == before + 4  # the whole sweep: 2 nodes of 2 GPUs
    assert "stored 4 GPU samples from 2 of 2 nodes in" in err
    assert "(stopped as they were stored; rollups are left to the next sweep)" in err
    lines = err.splitlines()
    assert f"factoryctl: {word}" in lines
    assert lines.index(f"factoryctl: {word}") > next(i for i, line in enumerate(lines) if line.startswith("stored "))
    assert out == ""  # a stopped command prints no listing


@pytest.mark.parametrize(("sig", "status", "word"), STOPS[:1])
def test_a_store_locked_past_the_stop_grace_stores_nothing_and_says_so(
    tmp_path: Path, sig: int, status: int, word: str
) -> None:
    factory, store_path = _factory(tmp_path)
    before = _sample_count(store_path)
    code, _, err = _stopped_in_the_write(factory, store_path, sig, keep_locked=True)
    assert code == status, err
    assert _sample_count(store_path) == before  # nothing half-written
    # how long it waited counts from the wait's start, before the stop: 2 s after the stop at most
    assert re.search(r"stayed locked by another writer for [0-9.]+ s, so the samples were not saved\.", err), err
    assert "stored " not in err
    assert f"factoryctl: {word}" in err.splitlines()
