"""`controller status` names a full store although the controller still manages to write its own figures.

On a full disk SQLite may still fit the small update of the figures in a page it had free while the samples do not
fit; status then said only "has stored no sample since ..." (hint: see its log), and the documented "the disk
holding the store is full" was reached only when no figures were stored either.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli import controller as status_cli
from factoryctl.controller import STATS_KEY
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import lock_path
from factoryctl.store.sqlite import Store

FULL = "the store at {path} is full (the disk or the database size limit), so the samples were not saved."


def store_with_fresh_figures(state: Path, store_error: str | None) -> None:
    """A sample stored 30 s ago, and this process's figures written 2 s ago (with the store error they carry)."""
    store = Store(state / "factory.db")
    now = time.time()
    gpu = GpuSample(node="n1", index=0, uuid="GPU-0", power_w=300.0)
    store.write([NodeSample(node="n1", time=now - 30, gpus=(gpu,))], stored_at=now - 30)
    figures = {"pid": os.getpid(), "nodes": 1, "up": 1, "written_at": now - 2, "store_error": store_error}
    store.set_meta(STATS_KEY, json.dumps(figures))
    store.close()
    os.utime(lock_path(state), (now - 60, now - 60))  # the lock was taken a minute ago


def test_a_full_disk_is_named_while_figures_are_still_written(
    cli: Any, lock_held: tuple[Path, Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, state, _ = lock_held
    store_with_fresh_figures(state, None)
    monkeypatch.setattr(status_cli, "DISK_FULL_BELOW_BYTES", 1 << 62)  # any disk is "full" below 4 EiB free
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert "has stored no sample since" in result.stderr
    assert ": the disk holding the store is full (" in result.stderr
    assert "hint: free disk space, or shorten controller.raw_retention" in result.stderr


def test_the_controllers_own_full_store_error_is_named(cli: Any, lock_held: tuple[Path, Path, Any]) -> None:
    config, state, _ = lock_held
    store_with_fresh_figures(state, FULL.format(path=state / "factory.db"))
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert ": the store is full (the disk or the database size limit)." in result.stderr
    assert "hint: free disk space, or shorten controller.raw_retention" in result.stderr
