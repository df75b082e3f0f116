"""A down node keeps its `last_seen` in `nodes -o json` read from a live controller's store.

The store knows when each node last sent a sample; the listing printed null for every node that was down, so nobody
could tell a node that vanished a minute ago from one never reached. A real store under a held controller lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.model.timefmt import iso_utc
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store


def test_a_down_node_keeps_the_time_of_its_last_sample(tmp_path: Path, cli: Callable[..., Any]) -> None:
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: ls\nstate_dir: {state}\nnodes:\n  a1: {{transport: local}}\n  l1: {{transport: local}}\n")
    lock = ControllerLock(state)
    lock.acquire()  # a live controller: it holds the lock and has just stored l1's sample
    try:
        store = Store(state / "factory.db")
        now = time.time()
        seen = now - 40.0
        l1 = NodeSample("l1", now, gpus=(GpuSample("l1", 0, uuid="GPU-l1", power_w=300.0),))
        store.write([l1], states=[NodeState("a1", "down", now - 5, seen, "refused", "a1: refused the connection")])
        store.close()
        result = cli("--config", str(config), "nodes", "-o", "json")
    finally:
        lock.release()
    items = {item["node"]: item for item in result.json()["items"]}
    assert items["a1"]["state"] == "down"
    assert items["a1"]["last_seen"] == iso_utc(seen)
    assert items["l1"]["last_seen"] == iso_utc(now)
