"""The collection loop against fake agents behind the real AgentSession: streaming, faults, reconnects, reload."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fakefleet import FakeFleet, make_config, wait_for
from store_rows import NODE_SAMPLES_SQL, event_kinds, value

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.collector import Collector
from factoryctl.telemetry.links import NodeLink


def rows(store: Store, node: str) -> int:
    return int(value(store.path, NODE_SAMPLES_SQL, node))


def test_streams_every_node_into_the_store(tmp_path: Path, fleet: FakeFleet) -> None:
    config = make_config(tmp_path)
    store = Store(config.store_path)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n1") >= 6 and rows(store, "n2") >= 6)
        assert collector.writer.states()["n1"].state == "up"
    finally:
        collector.stop()
    stats = collector.stats()
    assert stats["duplicates"] == 0
    assert stats["latency_p50_s"] is not None
    assert event_kinds(store.path)[:2] == ["node_up", "node_up"]
    assert store.integrity_check() == "ok"


def test_the_first_nodes_samples_are_stored_while_the_last_links_still_start(
    tmp_path: Path, fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting 2,000 links took about 20 s, and the writer started after the last: n1's samples waited for n2000."""
    config = make_config(tmp_path, nodes="n[1-2]")
    store = Store(config.store_path)
    start = NodeLink.start
    stored_first: list[bool] = []

    def start_after_n1_is_stored(link: NodeLink) -> None:
        if link.node.name == "n2":  # the last link starts only once the first one's samples are in the store
            try:
                wait_for(lambda: rows(store, "n1") >= 2)
            except AssertionError:
                stored_first.append(False)
            else:
                stored_first.append(True)
        start(link)

    monkeypatch.setattr(NodeLink, "start", start_after_n1_is_stored)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        assert stored_first == [True]
        wait_for(lambda: rows(store, "n2") >= 2)
    finally:
        collector.stop()
    assert collector.stats()["dropped"] == 0


def test_killed_agent_is_restarted_and_the_node_comes_back(tmp_path: Path, fleet: FakeFleet) -> None:
    config = make_config(tmp_path, nodes="n1")
    store = Store(config.store_path)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n1") >= 4)
        fleet.kill("n1")
        wait_for(lambda: len(fleet.procs["n1"]) == 2)
        before = rows(store, "n1")
        wait_for(lambda: rows(store, "n1") > before + 4)
        assert collector.writer.states()["n1"].state == "up"
    finally:
        collector.stop()
    kinds = event_kinds(store.path)
    assert kinds[:2] == ["node_up", "node_degraded"]  # then maybe node_down, when the restart takes 3 intervals
    assert kinds[-1] == "node_up"
    (message,) = [e.message for e in store.events(0, kind="node_degraded")]
    assert "agent exited" in message


def test_stalled_agent_goes_down_after_three_missed_samples_and_is_reconnected(
    tmp_path: Path, fleet: FakeFleet
) -> None:
    config = make_config(tmp_path, nodes="n1")
    fleet.args["n1"] = ["--stall-after", "3"]
    store = Store(config.store_path)
    # down after 1.75 s of silence (below 0.5 s intervals silence is judged as at 0.5 s), reconnected after 2.5 s
    collector = Collector(config, store, connector=fleet.connector, stall_s=2.5)
    collector.start()
    try:
        wait_for(lambda: len(fleet.procs.get("n1", [])) >= 2)
    finally:
        collector.stop()
    kinds = event_kinds(store.path)
    assert kinds[:3] == ["node_up", "node_degraded", "node_down"]


def test_unreachable_node_stays_down_while_others_stream(tmp_path: Path, fleet: FakeFleet) -> None:
    config = make_config(tmp_path)
    fleet.refuse.add("n2")
    store = Store(config.store_path)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n1") >= 4)
        state = collector.writer.states()["n2"]
        assert (state.state, state.error) == ("down", "refused")
    finally:
        collector.stop()


def test_full_store_buffers_and_loses_nothing_once_writable_again(
    tmp_path: Path, fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, nodes="n1")
    store = Store(config.store_path)
    real_write, full = store.write, threading.Event()

    def write(*args: Any, **kwargs: Any) -> int:
        if full.is_set():
            raise StoreError(f"the store at {store.path} is full.", "free disk space.")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write", write)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n1") >= 2)
        full.set()
        wait_for(lambda: collector.stats()["pending"] >= 10)
        assert "full" in collector.writer.store_error.message  # type: ignore[union-attr]
        assert collector.writer.states()["n1"].state == "up"  # collection goes on
        full.clear()
        wait_for(lambda: collector.writer.store_error is None and collector.stats()["pending"] == 0)
    finally:
        collector.stop()
    stats = collector.stats()
    assert stats["dropped"] == 0
    assert stats["rows"] == rows(store, "n1")


def test_reload_adds_and_removes_nodes_without_restart(tmp_path: Path, fleet: FakeFleet) -> None:
    config = make_config(tmp_path, nodes="n[1-2]")
    store = Store(config.store_path)
    collector = Collector(config, store, connector=fleet.connector)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n2") >= 2)
        change = collector.apply(make_config(tmp_path, nodes="n1,n3"))
        assert change == {"added": ["n3"], "removed": ["n2"], "reconnected": [], "retimed": []}
        wait_for(lambda: rows(store, "n3") >= 2)
        assert set(collector.links) == {"n1", "n3"}
        assert fleet.procs["n2"][-1].poll() is not None
        assert len(fleet.procs["n1"]) == 1
    finally:
        collector.stop()


def test_a_link_failure_is_logged_with_its_node_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A node going down is one line naming it; the same failure on every retry is debug only (2,000 unreachable
    nodes wrote 27,000 warning lines in 50 s), and a blip on a node that is up is a warning of its own."""
    from factoryctl.errors import NodeError
    from factoryctl.telemetry.writer import StoreWriter

    clock = [1_795_000_000.0]
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["sim1", "sim2"])
    writer.offer(NodeSample("sim1", clock[0], gpus=(GpuSample("sim1", 0, power_w=100.0),)))
    refused = NodeError("sim2", "refused", "127.0.0.1:2222 refused the connection")
    with caplog.at_level("DEBUG", logger="factoryctl.telemetry"):
        for _ in range(5):
            writer.link_failed("sim2", refused)
        writer.link_failed("sim1", NodeError("sim1", "agent", "sim1: the agent exited"))
        writer.flush()  # state changes are logged once per tick, folded
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    debug = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert warnings == [
        "sim2 is down: 127.0.0.1:2222 refused the connection",
        "sim1 is degraded: the agent exited",  # the node named once
    ]
    assert debug == ["sim2: 127.0.0.1:2222 refused the connection"] * 4
    store.close()
