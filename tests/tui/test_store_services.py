"""`StoreServices`: the dashboard on a store written the way the controller writes it (real SQLite, no fake)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
from factory_data import node

from factoryctl.demo import demo_config
from factoryctl.errors import UsageError
from factoryctl.live.services import open_services
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices, controller_is_live
from factoryctl.store import open_store
from factoryctl.store.rows import Event, NodeState


@pytest.fixture
def config(tmp_path: Path):
    return demo_config(tmp_path / "state")


def write_history(config, minutes: int = 5, age_s: float = 0.0) -> float:
    """demo01 and demo02 sampled every 10 s for `minutes`, the last `age_s` ago; demo03 judged down."""
    now = time.time()
    last = now - age_s
    store = open_store(config.store_path)
    try:
        for t in range(int(last) - 60 * minutes, int(last) + 1, 10):
            samples = [dataclasses.replace(node(i), time=float(t)) for i in (1, 2)]
            store.write(samples)
        store.write(
            states=[
                NodeState("demo01", "up", now - 600, last),
                NodeState("demo02", "degraded", now - 5, last, "timeout", "slow answers"),
                NodeState("demo03", "down", now - 30, now - 30, "refused", "demo03: connection refused."),
            ],
            events=[Event(now - 30, "node_down", "connection refused", node="demo03", severity="error")],
        )
    finally:
        store.close()
    return now


def test_snapshot_reads_the_controllers_view(config) -> None:
    write_history(config)
    services = StoreServices(config)
    try:
        snap = services.snapshot()
        by_name = {n.node: n for n in snap.nodes}
        assert len(snap.nodes) == 8
        assert by_name["demo01"].state == "up"
        assert len(by_name["demo01"].gpus) == 8
        assert by_name["demo02"].state == "degraded"
        assert by_name["demo02"].message == "slow answers"
        assert by_name["demo03"].state == "down"
        assert by_name["demo03"].error == "refused"
        assert by_name["demo08"].message == "the controller has not reached it yet."
        assert [e.kind for e in snap.events] == ["node_down"]
        assert len(snap.power_history_w) >= 4 * 60  # minutes of backfill, spaced at the sampling interval
        history = services.node_history("demo01")
        assert [g.index for g in history.gpus] == list(range(8))
        assert len(history.gpus[0].power_w) >= 30
    finally:
        services.close()


def test_drain_and_resume_go_to_the_store(config) -> None:
    write_history(config, minutes=1)
    services = StoreServices(config, "demo[01-02]")
    try:
        services.drain("demo01", "cabling")
        assert services.snapshot().drained == frozenset({"demo01"})
        services.resume("demo01")
        assert services.snapshot().drained == frozenset()
        with pytest.raises(UsageError):
            services.drain("demo05", "outside the target")
    finally:
        services.close()


def test_power_cap_is_one_audited_request(config) -> None:
    write_history(config, minutes=1)
    services = StoreServices(config)
    try:
        answers = services.set_power_cap("demo04", 100)  # clamped up to the GPUs' 200 W minimum: a change
    finally:
        services.close()
    assert {(a["enforced_w"], a["clamped"]) for a in answers} == {(200.0, True)}
    store = open_store(config.store_path)
    try:
        entries = store.audit(0, ["demo04"])
        assert len(entries) == 8
        assert {e.reason for e in entries} == {"dashboard: 100 W requested"}  # as without a controller: it had none
    finally:
        store.close()


def test_without_a_live_controller_the_dashboard_collects_itself(config) -> None:
    write_history(config, minutes=1)
    assert not controller_is_live(config)
    services = open_services(config, "demo01")
    try:
        assert isinstance(services.delegate, PolledServices)
    finally:
        services.close()


def test_with_a_live_controller_the_dashboard_reads_its_store(config) -> None:
    from factoryctl.store.lock import ControllerLock

    write_history(config, minutes=1)
    lock = ControllerLock(config.state_dir)
    lock.acquire()
    try:
        assert controller_is_live(config)
        services = open_services(config)
        try:
            assert isinstance(services.delegate, StoreServices)
        finally:
            services.close()
    finally:
        lock.release()


def test_a_controller_is_not_live_because_a_node_clock_runs_ahead(config) -> None:
    """Samples stamped an hour ahead by a node's clock, stored long ago: the dashboard collects itself."""
    import time

    from factoryctl.model.telemetry import GpuSample, NodeSample
    from factoryctl.store.lock import ControllerLock
    from factoryctl.store.sqlite import Store

    store = Store(config.store_path)
    try:
        ahead = time.time() + 3600
        store.write([NodeSample("demo01", ahead, gpus=(GpuSample("demo01", 0),))], stored_at=time.time() - 600)
    finally:
        store.close()
    lock = ControllerLock(config.state_dir)
    lock.acquire()
    try:
        assert not controller_is_live(config)
    finally:
        lock.release()


def test_a_store_this_user_cannot_write_is_read_and_actions_explain(config, monkeypatch: pytest.MonkeyPatch) -> None:
    from factoryctl.errors import FactoryError
    from factoryctl.store import sqlite

    write_history(config, minutes=1)

    def refuse(path, readonly=False):  # what a root-owned store gives an operator (root here ignores chmod)
        raise sqlite.StoreError(f"cannot open {path}: attempt to write a readonly database.")

    monkeypatch.setattr(sqlite, "open_store", refuse)
    services = StoreServices(config)
    try:
        assert not services.writable
        assert services.snapshot().node("demo01").state == "up"
        with pytest.raises(FactoryError, match="cannot write the store"):
            services.drain("demo01", "x")
    finally:
        services.close()


def test_a_controller_starting_and_stopping_switches_the_source(config) -> None:
    from factoryctl.live.services_auto import AutoServices
    from factoryctl.store.lock import ControllerLock

    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    lock = ControllerLock(config.state_dir)
    try:
        assert services.source == "agents"
        deadline = time.monotonic() + 15  # the embedded collector shows `connecting` until the agent answers
        while services.snapshot().node("demo01").state != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert services.snapshot().node("demo01").state == "up"
        write_history(config, minutes=1)  # what a controller writes
        lock.acquire()
        snap = services.snapshot()
        assert services.source == "store"
        assert isinstance(services.delegate, StoreServices)
        assert [e.kind for e in snap.events if e.kind == "source"] == ["source"]
        lock.release()
        snap = services.snapshot()
        assert services.source == "agents"
        assert any("collecting from the nodes directly" in e.message for e in snap.events)
    finally:
        lock.release()
        services.close()


def test_a_controller_handing_back_keeps_every_node_state(config) -> None:
    """The embedded collector starts from the controller's last view: no `connecting`, the down node still down."""
    from factoryctl.live.services_auto import AutoServices
    from factoryctl.store.lock import ControllerLock

    services = AutoServices(config, "demo[01-03]", check_every_s=0.0)
    lock = ControllerLock(config.state_dir)
    try:
        write_history(config, minutes=1)  # demo01 up, demo02 degraded, demo03 down (connection refused)
        lock.acquire()
        before = services.snapshot()
        assert services.source == "store"
        assert [before.node(f"demo0{i}").state for i in (1, 2, 3)] == ["up", "degraded", "down"]
        lock.release()
        after = services.snapshot()  # the collector's first look: no agent has answered yet
        assert services.source == "agents"
        assert [n.state for n in after.nodes if n.state == "connecting"] == []
        assert after.node("demo01").state == "up"
        assert after.node("demo01").gpus == before.node("demo01").gpus
        assert after.node("demo03").state == "down"
        assert after.node("demo03").message == "connection refused."  # an older controller's prefix taken off
    finally:
        lock.release()
        services.close()


def test_a_hand_back_noticed_late_announces_no_outage(config) -> None:
    """The dashboard looks for a stopped controller every CHECK_EVERY_S (5 s): its last samples are 5-6 s old then.

    Judged by their age, every up node went down ("down: no sample for 6 s"), then up again ("answers again"). Its
    silence counts from the hand-back instead: demo01 stays up, demo02 degraded, until their agents answer.
    """
    from factoryctl.live.services_auto import AutoServices
    from factoryctl.store.lock import ControllerLock

    services = AutoServices(config, "demo[01-03]", check_every_s=0.0)
    lock = ControllerLock(config.state_dir)
    try:
        handed_back = write_history(config, minutes=1, age_s=5.5)
        lock.acquire()
        assert [services.snapshot().node(f"demo0{i}").state for i in (1, 2)] == ["up", "degraded"]
        lock.release()
        shown: set[tuple[str, str, bool]] = set()  # (node, state, whether its sample is this collector's own)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            snap = services.snapshot()
            fresh = {n.node: n.time > handed_back for n in snap.nodes}
            shown |= {(n.node, n.state, fresh[n.node]) for n in snap.nodes if n.node != "demo03"}
            if fresh["demo01"] and fresh["demo02"] and snap.node("demo02").state == "up":
                break
            time.sleep(0.05)
        assert services.source == "agents"
        seen_before_answering = {(node, state) for node, state, fresh in shown if not fresh}
        assert seen_before_answering == {("demo01", "up"), ("demo02", "degraded")}
        assert {(node, state) for node, state, fresh in shown if fresh} == {("demo01", "up"), ("demo02", "up")}
        outages = [(e.node, e.kind, e.message) for e in snap.events if e.kind in ("node_down", "node_degraded")]
        assert [o for o in outages if o[0] != "demo03"] == []
    finally:
        lock.release()
        services.close()


class _SlowDrain:
    """A source whose drain blocks until released, recording whether it was closed while draining."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.closed = False
        self.closed_mid_call = False

    def drain(self, node: str, reason: str) -> None:
        self.entered.set()
        self.release.wait(10)
        self.closed_mid_call = self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def switching(config, monkeypatch):
    """AutoServices over `_SlowDrain` sources, and the switch that says whether a controller runs."""
    from factoryctl.live import services_auto, services_store

    live = [False]

    def view(config) -> services_store.ControllerView:  # a controller holding the lock and writing, or none
        return services_store.ControllerView(4242 if live[0] else None, time.time())

    monkeypatch.setattr(services_store, "controller_view", view)
    open_store(config.store_path).close()  # a store to read once `live` says a controller holds the lock
    opened: list[_SlowDrain] = []

    def fake_open(self, source: str) -> _SlowDrain:
        opened.append(_SlowDrain())
        return opened[-1]

    monkeypatch.setattr(services_auto.AutoServices, "_open", fake_open)
    return services_auto.AutoServices(config, "demo01", check_every_s=0.0), opened, live


def test_a_source_switch_waits_for_a_running_action_before_closing_the_old_source(switching) -> None:
    """The snapshot thread switched and closed the source while an action thread was still inside it."""
    services, opened, live = switching
    first = opened[0]
    action = threading.Thread(target=services.drain, args=("demo01", "maintenance"))
    action.start()
    assert first.entered.wait(10)
    live[0] = True
    services._choose()  # what the snapshot thread does when the controller starts
    assert services.delegate is opened[1]
    assert not first.closed  # still in use by the drain
    first.release.set()
    action.join(10)
    assert not first.closed_mid_call
    assert first.closed  # closed as soon as the drain returned
    services.close()
    assert opened[1].closed


def test_a_source_opened_after_close_is_closed_at_once(switching) -> None:
    """A snapshot worker still switching sources when the dashboard quit left the new source's links running."""
    services, opened, live = switching
    services.close()
    live[0] = True
    services._choose()  # the worker, mid-switch, after the quit
    assert len(opened) == 2
    assert opened[1].closed
    assert services.delegate is opened[0]
