"""A controller starting (or restarting) under an open dashboard: its not-yet-written rows are never shown `down`.

With 64 nodes, 48 read `down agent` / `down timeout` for ~6 s at each controller start, and the power graph kept a
false dip: the dashboard read the store at the controller's first write, when most rows were still its
predecessor's (aged, or written `down` as it stopped) or missing. Now the embedded collector keeps going until the
starting controller has stored every node, and a store read meanwhile shows such rows as `connecting`. The lock is
held by a real, separate process (the kernel's flock) and the store is real SQLite, written as a controller writes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from factory_data import node
from test_late_controller import LockHolder

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.grid import GridPrice
from factoryctl.live.history import RecentHistory
from factoryctl.live.services_auto import AutoServices
from factoryctl.live.services_base import assemble_snapshot
from factoryctl.model.telemetry import NodeSample
from factoryctl.store import open_store
from factoryctl.store.rows import Event, NodeState


@pytest.fixture
def config(tmp_path: Path) -> FactoryConfig:
    return demo_config(tmp_path / "state")


def write_rows(config: FactoryConfig, rows: dict[int, tuple[str, float]]) -> None:
    """Node demo0N judged `state` at time `at` (sampled then if not down), as a controller stores it."""
    store = open_store(config.store_path)
    try:
        for i, (state, at) in rows.items():
            samples = [dataclasses.replace(node(i), time=at)] if state != "down" else []
            error = None if state != "down" else "agent"
            states = [NodeState(f"demo0{i}", state, at, at if state != "down" else None, error, "stopped")]
            store.write(samples, states=states, stored_at=time.time())
    finally:
        store.close()


def controller_started(config: FactoryConfig, holder: LockHolder) -> None:
    """The lock holder's `controller_start` event, which a controller stores right after taking its lock."""
    time.sleep(0.05)  # later than the lock file's time, as it is
    store = open_store(config.store_path)
    try:
        store.add_events([Event(time.time(), "controller_start", f"controller {holder.pid} started with 8 nodes")])
    finally:
        store.close()
    time.sleep(0.05)


def states(services: AutoServices) -> dict[str, str]:
    return {n.node: n.state for n in services.snapshot().nodes}


def test_a_restarted_controller_takes_over_only_once_it_stored_every_node(config: FactoryConfig) -> None:
    """Its predecessor's rows (one aged, one written down as it stopped) are no verdict of the new one."""
    write_rows(config, {1: ("up", time.time() - 60), 2: ("down", time.time() - 2)})
    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    holder = None
    try:
        assert services.source == "agents"  # no controller: the dashboard collects
        holder = LockHolder(config)  # the controller restarts
        controller_started(config, holder)
        write_rows(config, {1: ("up", time.time())})  # its first write: demo01 only
        services.snapshot()
        assert services.source == "agents"  # demo02's row is its predecessor's: not read yet
        write_rows(config, {2: ("up", time.time())})
        seen = states(services)
        assert services.source == "store"
        assert seen == {"demo01": "up", "demo02": "up"}
    finally:
        services.close()
        if holder is not None:
            holder.release()


def test_a_store_read_while_the_controller_starts_shows_unstored_rows_connecting(config: FactoryConfig) -> None:
    """A dashboard opened just after the controller's first write reads the store; the rest are `connecting`."""
    write_rows(config, {2: ("down", time.time() - 2), 3: ("up", time.time() - 60)})
    with_holder = LockHolder(config)
    try:
        controller_started(config, with_holder)
        write_rows(config, {1: ("up", time.time())})
        services = AutoServices(config, "demo[01-04]", check_every_s=0.0)
        try:
            assert services.source == "store"
            snapshot = services.snapshot()
            seen = {n.node: n.state for n in snapshot.nodes}
            assert seen == {"demo01": "up", "demo02": "connecting", "demo03": "connecting", "demo04": "connecting"}
            demo02 = snapshot.node("demo02")
            assert demo02 is not None
            assert "has not reported it yet" in (demo02.message or "")
        finally:
            services.close()
    finally:
        with_holder.release()


def test_power_is_not_recorded_while_some_node_is_connecting(config: FactoryConfig) -> None:
    """16 of 64 nodes stored made a point of a quarter of the factory's power: a false dip kept in the graph."""
    history = RecentHistory(config.interval_s)
    waiting = NodeSample(node="demo02", time=time.time(), state="connecting")
    specs = config.resolve_target("demo[01-02]")
    grid = GridPrice(config)
    assemble_snapshot(config, specs, time.time(), (node(1), waiting), frozenset(), (), history, grid)
    assert history.factory_series() == ()
    assemble_snapshot(config, specs, time.time() + 5, (node(1), node(2)), frozenset(), (), history, grid)
    assert len(history.factory_series()) == 1
