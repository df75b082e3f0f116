"""`controller status` says the power loop's last run: when, how many GPUs it changed, its errors and why it failed.

The figures are the ones the controller writes (`Controller.stats`), here written by the test under a lock it holds,
as `controller status` reads a running controller's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from factoryctl.controller import STATS_KEY
from factoryctl.store.sqlite import Store

STATS = {"pid": os.getpid(), "nodes": 2, "up": 2, "written_at": 1700000000.25}


def _status(cli: Any, lock_held: Any, power_loop: Any) -> tuple[dict[str, Any], str]:
    config, state, _ = lock_held
    store = Store(state / "factory.db")
    store.set_meta(STATS_KEY, json.dumps({**STATS, "power_loop": power_loop}))
    store.close()
    document = cli("--config", str(config), "controller", "status", "-o", "json")
    text = cli("--config", str(config), "controller", "status")
    assert (document.exit_code, text.exit_code) == (0, 0), document.stderr
    return document.json()["stats"]["power_loop"], text.stdout


def test_status_says_the_power_loops_last_run(cli: Any, lock_held: tuple[Path, Path, Any]) -> None:
    ran = {"interval_s": 300.0, "runs": 3, "last_run_at": 1700000000.5, "last_changed": 4, "last_errors": 1}
    document, text = _status(cli, lock_held, ran | {"last_failure": None})
    assert document["last_run_at"] == "2023-11-14T22:13:20.500Z"
    assert "power loop: last run 2023-11-14T22:13:20.500Z: 4 GPUs changed, 1 error\n" in text

    failed = ran | {"last_changed": 0, "last_errors": 1, "last_failure": "no price in prices.csv for the power loop"}
    _, text = _status(cli, lock_held, failed)
    assert "0 GPUs changed, 1 error (no price in prices.csv for the power loop)" in text


def test_status_of_a_controller_without_the_loop_says_nothing_of_it(cli: Any, lock_held: Any) -> None:
    document, text = _status(cli, lock_held, None)
    assert document is None
    assert "power loop" not in text
    _, text = _status(cli, lock_held, {"interval_s": 300.0, "runs": 0, "last_run_at": None})
    assert "power loop: on, not run yet" in text
