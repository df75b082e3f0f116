"""`controller status` in-process: not running (exit 1 and a hint), running (the lock held, its figures), and
running but not storing here (store deleted, figures of another pid, no fresh sample): exit 1 with a sentence."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.controller import STATS_KEY
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock, ControllerRunning
from factoryctl.store.sqlite import Store


def test_status_without_and_with_a_controller(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\n")
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert "controller: not running" in result.stdout
    assert "controller run" in result.stderr
    Store(tmp_path / "state" / "factory.db").set_meta(
        STATS_KEY, json.dumps({"pid": os.getpid(), "nodes": 1, "up": 1, "written_at": 1700000000.25})
    )
    lock = ControllerLock(tmp_path / "state")
    lock.acquire()
    try:
        result = cli("--config", str(config), "controller", "status", "-o", "json")
        assert result.exit_code == 0
        doc = result.json()
        assert (doc["running"], doc["healthy"], doc["pid"], doc["problem"]) == (True, True, os.getpid(), None)
        assert doc["stats"]["pid"] == os.getpid()
        assert doc["stats"]["written_at"] == "2023-11-14T22:13:20.250Z"
        table = cli("--config", str(config), "controller", "status")
        assert f"controller: running (pid {os.getpid()})" in table.stdout
        assert "(as of 2023-11-14T22:13:20.250Z)" in table.stdout
        with pytest.raises(ControllerRunning, match="already running"):
            ControllerLock(tmp_path / "state").acquire(attempts=1)
    finally:
        lock.release()
    again = ControllerLock(tmp_path / "state")
    again.acquire(attempts=1)  # released: free again
    again.release()


def _status(cli: Any, config: Path) -> Any:
    result = cli("--config", str(config), "controller", "status", "-o", "json")
    assert result.exit_code == 1, result.stdout
    return result


def test_running_but_not_storing_here_is_exit_1_with_a_sentence(cli: Any, lock_held: Any) -> None:
    config, state, lock = lock_held
    result = _status(cli, config)  # the lock is held but the store was deleted (or never created)
    assert (result.json()["running"], result.json()["healthy"], result.json()["pid"]) == (True, False, os.getpid())
    assert f"the controller (pid {os.getpid()}) runs but there is no store at" in result.stderr
    assert "restart it" in result.stderr
    store = Store(state / "factory.db")
    store.set_meta(STATS_KEY, json.dumps({"pid": 4242}))
    old = time.time() - 60
    os.utime(lock.path, (old, old))  # the controller started a minute ago
    result = _status(cli, config)
    assert "has not written its figures" in result.stderr
    assert "deleted or replaced" in result.stderr
    store.set_meta(STATS_KEY, json.dumps({"pid": os.getpid()}))
    gpu = GpuSample(node="n1", index=0, uuid="GPU-0", name="H100", power_w=300.0)
    store.write([NodeSample(node="n1", time=time.time() - 30, gpus=(gpu,))], stored_at=time.time() - 30)
    result = _status(cli, config)
    assert "has stored no sample since" in result.stderr
    assert result.json()["newest_sample_age_s"] >= 30
    store.write([NodeSample(node="n1", time=time.time(), gpus=(gpu,))])
    fresh = cli("--config", str(config), "controller", "status", "-o", "json")
    assert fresh.exit_code == 0, fresh.stderr
    assert fresh.json()["healthy"] is True
    store.close()
