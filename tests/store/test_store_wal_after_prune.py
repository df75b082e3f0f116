"""A large prune gives its write-ahead log back, without waiting on a reader of an older snapshot.

A prune's transaction writes every page it frees to the WAL (157 MB for a week of 256 GPUs), and SQLite kept the
file at that size until the controller stopped. A TRUNCATE checkpoint alone would wait (10 s, holding the write
lock) for a `history` still reading the snapshot before the prune.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store import samples
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary


def _filled(path: Path) -> Store:
    """4 GPUs, 2 h at 1 Hz, rolled up: the first 100 minutes are past a 20-minute raw retention."""
    store = Store(path)
    store.write(
        [
            NodeSample(
                "w1", T0 + i, gpus=tuple(GpuSample("w1", g, power_w=100.0 + g, energy_j=i * 100.0) for g in range(4))
            )
            for i in range(2 * 3600)
        ]
    )
    store.rollup(now=T0 + 2 * 3600 + 180)
    return store


def _wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_large_prune_truncates_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples, "WAL_KEPT_BYTES", 64 * 1024)  # the test's prune frees about 1 MB of pages
    path = tmp_path / "factory.db"
    store = _filled(path)
    store.prune(20 * 60, 30 * 86400, now=T0 + 2 * 3600)
    assert store.count_rows()["sample"] == 4 * 20 * 60
    assert _wal_size(path) == 0  # was the prune's whole transaction, kept until the store was closed
    store.close()


def test_a_reader_of_an_older_snapshot_neither_waits_the_prune_nor_loses_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(samples, "WAL_KEPT_BYTES", 64 * 1024)
    path = tmp_path / "factory.db"
    store = _filled(path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM node").fetchall()  # holds the snapshot before the prune
    began = time.monotonic()
    store.prune(20 * 60, 30 * 86400, now=T0 + 2 * 3600)
    assert time.monotonic() - began < 3  # a TRUNCATE waited the busy timeout, 10 s
    assert _wal_size(path) > 64 * 1024
    assert reader.execute("SELECT COUNT(*) FROM sample").fetchone()[0] == 4 * 2 * 3600  # its snapshot intact
    reader.execute("COMMIT")
    reader.close()
    store.prune(20 * 60, 30 * 86400, now=T0 + 2 * 3600)  # the next prune, with nothing left to delete
    assert _wal_size(path) == 0
    store.close()
