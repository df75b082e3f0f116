"""The node states the controller stores, and a listing read from them, say the message without the node's name.

A listing's `errors` entry names its node in `node`; its `message` began with it again (`n1: 3 samples missed.`)
when it came from the controller's store, unlike a poll's. The controller's health, its stall and "not reached"
messages leave the node out now, a row stored by an older controller is read without it, and its log and events
still name the node once. A real store under a held controller lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clocks import sample

from factoryctl.config import load_config
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.health import NodeHealth
from factoryctl.telemetry.latest import read_live
from factoryctl.telemetry.link_state import LinkSilence
from factoryctl.telemetry.writer import StoreWriter


@pytest.fixture
def live_store(tmp_path: Path) -> Iterator[Path]:
    """A live controller's store: a1 up, old down as an older controller stored it (`old: ...`); new has no row."""
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: st\nstate_dir: {state}\ncontroller: {{interval_s: 1}}\nnodes:\n  a1: {{transport: local}}\n"
        "  old: {host: 127.0.0.1, port: 1, user: nobody}\n  new: {host: 127.0.0.1, port: 1, user: nobody}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()
    try:
        store = Store(state / "factory.db")
        now = time.time()
        down = NodeState("old", "down", now - 30, now - 40, "timeout", "old: 3 samples missed.")
        store.write([sample("old", now - 40)], states=[down])
        store.write([sample("a1", now)], states=[NodeState("a1", "up", now - 3600, now)])
        store.close()
        yield config
    finally:
        lock.release()


def test_a_message_an_older_controller_stored_is_read_without_its_node(live_store: Path) -> None:
    live = read_live(load_config(live_store))
    assert live is not None
    said = {e.node: (e.kind, e.message) for e in live.errors}
    assert said == {
        "old": ("timeout", "3 samples missed."),
        "new": ("agent", "the controller has not reached it yet."),
    }
    assert {s.node: s.message for s in live.samples if s.state == "down"} == {
        "old": "3 samples missed.",
        "new": "the controller has not reached it yet.",
    }


def test_nodes_lists_the_stored_error_with_its_node_once(live_store: Path, cli: Callable[..., Any]) -> None:
    result = cli("--config", str(live_store), "nodes", "old", "-o", "json")
    assert result.json()["errors"] == [{"node": "old", "error": "timeout", "message": "3 samples missed."}]
    assert "factoryctl: old: 3 samples missed." in result.stderr.splitlines(), result.stderr


def test_the_controllers_own_messages_leave_the_node_out() -> None:
    health = NodeHealth("n1", 1.0)
    assert (health.state, health.message) == ("down", "not reached yet.")
    health.seen(10.0)
    change = health.tick(11.6)
    assert change is not None
    assert (change.node, change.message) == ("n1", "1 sample missed.")
    stalled = LinkSilence().stalled("n1", 12.4, 10.0, 100.0)
    assert (stalled.node, stalled.message) == ("n1", "no sample for 12 s; reconnecting.")


def test_the_log_and_the_events_still_name_the_node(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "factory.db")
    now = [time.time()]
    writer = StoreWriter(store, 1.0, clock=lambda: now[0])
    writer.set_nodes(["n1"])
    writer.offer(sample("n1", now[0]))
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        now[0] += 4.0  # silent for 4 intervals: down
        writer.flush()
    events = [(e.kind, e.message) for e in store.events(0) if e.kind.startswith("node_")]
    store.close()
    assert events == [("node_up", "n1 is up"), ("node_down", "n1 is down: 3 samples missed.")]
    assert "n1 is down: 3 samples missed." in [r.getMessage() for r in caplog.records]
