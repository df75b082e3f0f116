"""A stopped controller is not a fleet outage: its old rows are `stale`, not `down`.

A black-box review stopped the controller (SIGSTOP) under a dashboard reading its store: after ~9 s the header read
`64 nodes │ 64 down · 64 unhealthy │ 0 up` and `GPUs 0/512 busy` while the events panel said the controller was
late. Only one process was stuck. Why a row aged decides now: the controller holding the lock is late (stores
nothing), so every old row is `stale` with its last values; a controller that writes but no longer refreshes one
node's row still has that node `down`. The lock is held by a real process and the store is real SQLite.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_data import fixed_snapshot, node
from pilot_helpers import plain
from test_late_controller import LockHolder

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.grid import GridPrice
from factoryctl.live.history import RecentHistory
from factoryctl.live.services_auto import AutoServices
from factoryctl.live.services_base import assemble_snapshot
from factoryctl.live.services_store import StoreServices
from factoryctl.model.telemetry import NodeSample
from factoryctl.store import open_store
from factoryctl.store.rows import NodeState
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.renderables.node_rows import cell_pieces
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.view import node_rows, summarize


@pytest.fixture
def config(tmp_path: Path) -> FactoryConfig:
    return demo_config(tmp_path / "state")


@pytest.fixture
def lock(config: FactoryConfig) -> Iterator[LockHolder]:
    holder = LockHolder(config)
    try:
        yield holder
    finally:
        holder.release()


def store_rows(config: FactoryConfig, age_s: float, state: str = "up", nodes: tuple[int, ...] = (1, 2)) -> None:
    """`nodes` sampled and judged `state` `age_s` ago, stored then (the store's `samples_stored_at`)."""
    at = time.time() - age_s
    error, message = ("timeout", "3 samples missed.") if state == "down" else (None, None)
    store = open_store(config.store_path)
    try:
        samples = [dataclasses.replace(node(i), time=at) for i in nodes]
        states = [NodeState(f"demo0{i}", state, at - 600, at, error, message) for i in nodes]
        store.write(samples, states=states, stored_at=at)
    finally:
        store.close()


def store_snapshot(config: FactoryConfig) -> dict[str, NodeSample]:
    services = StoreServices(config, "demo[01-02]")
    try:
        return {n.node: n for n in services.snapshot().nodes}
    finally:
        services.close()


def test_a_late_controllers_old_rows_are_stale_not_down(config: FactoryConfig, lock: LockHolder) -> None:
    store_rows(config, age_s=60)
    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    try:
        snapshot = services.snapshot()
    finally:
        services.close()
    demo01 = snapshot.node("demo01")
    assert demo01 is not None
    assert (demo01.state, demo01.error) == ("stale", None)
    assert demo01.message == "the controller is late: it stored no sample from it for 60 s (its last values)."
    assert len(demo01.gpus) == 8  # its last values, not a down row's none
    summary = summarize(snapshot)
    assert (summary.down, summary.unhealthy, summary.up, summary.stale) == (0, 0, 0, 2)
    assert summary.gpus_total == 16
    lines = plain(FactorySummaryRenderable(summary, now=snapshot.time), width=100).splitlines()
    assert lines[0].rstrip() == "demo · 2 nodes │ 0 up · 2 stale", lines
    assert lines[1].startswith(f"controller pid {lock.pid} late: data 60 s old │ "), lines


def test_a_node_the_controller_left_down_stays_down_while_it_is_late(config: FactoryConfig, lock: LockHolder) -> None:
    store_rows(config, age_s=60, state="down", nodes=(2,))
    store_rows(config, age_s=60, nodes=(1,))
    rows = store_snapshot(config)
    assert rows["demo01"].state == "stale"
    assert (rows["demo02"].state, rows["demo02"].error) == ("down", "timeout")  # its verdict before it stopped


def test_a_row_a_writing_controller_no_longer_refreshes_is_down(config: FactoryConfig, lock: LockHolder) -> None:
    store_rows(config, age_s=60, nodes=(2,))
    store_rows(config, age_s=0, nodes=(1,))  # it writes: it is not late, so demo02's silence is demo02's
    rows = store_snapshot(config)
    assert rows["demo01"].state == "up"
    assert (rows["demo02"].state, rows["demo02"].error) == ("down", "timeout")
    assert rows["demo02"].message == "the controller has stored no sample from it for 60 s."


def test_stale_rows_record_no_factory_power(config: FactoryConfig) -> None:
    """A late controller's old values are not a new point of the power graph (nor of the hour's energy)."""
    history = RecentHistory(config.interval_s)
    specs, grid = config.resolve_target("demo[01-02]"), GridPrice(config)
    nodes = (node(1), dataclasses.replace(node(2), state="stale"))
    assemble_snapshot(config, specs, time.time(), nodes, frozenset(), (), history, grid)
    assert history.factory_series() == ()
    assemble_snapshot(config, specs, time.time(), nodes[:1], frozenset(), (), history, grid)
    assert len(history.factory_series()) == 1


def test_a_stale_row_keeps_its_bars_greyed_and_says_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    row = node_rows(dataclasses.replace(fixed_snapshot(), nodes=(dataclasses.replace(node(1), state="stale"),)))[0]
    cells = cell_pieces(row)
    assert cells["state"][0][0] == "stale"
    assert len(cells["util"]) == 9  # 8 bars and the mean, not a down row's reason
    assert {style for _, style in cells["util"] + cells["power"] + cells["temp"]} == {tone("secondary", False)}
    assert cells["flags"] == []  # neither unhealthy nor down
