"""`controller status` in-process: not running (exit 1 and a hint), and running (the lock held, its figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from factoryctl.controller import STATS_KEY
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
        STATS_KEY, json.dumps({"pid": 4242, "nodes": 1, "up": 1, "written_at": 1700000000.25})
    )
    lock = ControllerLock(tmp_path / "state")
    lock.acquire()
    try:
        result = cli("--config", str(config), "controller", "status", "-o", "json")
        assert result.exit_code == 0
        doc = result.json()
        assert doc["running"] is True
        assert doc["stats"]["pid"] == 4242
        assert doc["stats"]["written_at"] == "2023-11-14T22:13:20.250Z"
        table = cli("--config", str(config), "controller", "status")
        assert "(as of 2023-11-14T22:13:20.250Z)" in table.stdout
        with pytest.raises(ControllerRunning, match="already running"):
            ControllerLock(tmp_path / "state").acquire(attempts=1)
    finally:
        lock.release()
    again = ControllerLock(tmp_path / "state")
    again.acquire(attempts=1)  # released: free again
    again.release()
