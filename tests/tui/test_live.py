"""The dashboard's live path: `PolledServices` over the real local transport, agents on the simulated driver.

No fake here: agents are real subprocesses; a node going down is an agent killed with SIGKILL, a slow node is one
stopped with SIGSTOP.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from agent_processes import agents_of
from pilot_helpers import first_snapshot, plain, wait_until
from waiting import wait_for

from factoryctl.config import parse_config
from factoryctl.demo import DEMO_YAML, demo_config
from factoryctl.live import services_polled
from factoryctl.live.services_polled import PolledServices
from factoryctl.sim.state import SimNode
from factoryctl.store import open_store
from factoryctl.telemetry.links import Backoff
from factoryctl.tui.app import make_app
from factoryctl.tui.widgets.node_table import NodeTable


@pytest.fixture
def live(tmp_path: Path) -> Iterator[PolledServices]:
    services = PolledServices(demo_config(tmp_path / "state"), "demo[01-03]")
    wait_for(lambda: set(states(services).values()) == {"up"}, 15.0, "every node up")
    yield services
    services.close()


@pytest.fixture
def live_half_second(tmp_path: Path) -> Iterator[PolledServices]:
    """`live` sampled every 0.5 s, not 1 s: silence judges a node degraded after 0.75 s and down after 1.75 s."""
    config = parse_config(DEMO_YAML + "controller:\n  interval_s: 0.5\n", Path("<demo>"), tmp_path / "state")
    services = PolledServices(config, "demo[01-03]")
    wait_for(lambda: set(states(services).values()) == {"up"}, 15.0, "every node up")
    yield services
    services.close()


def agent_process(node: str) -> psutil.Process:
    """The agent subprocess serving `node` (a child of this test process)."""
    found = agents_of(node)
    if not found:
        raise AssertionError(f"no agent process for {node}")
    return found[0]


def states(services: PolledServices) -> dict[str, str]:
    return {n.node: n.state for n in services.snapshot().nodes}


def test_first_snapshot_has_every_node_and_gpu(live: PolledServices) -> None:
    snap = live.snapshot()
    assert [n.node for n in snap.nodes] == ["demo01", "demo02", "demo03"]
    assert all(n.state == "up" and len(n.gpus) == 8 for n in snap.nodes)
    assert snap.racks == {"demo01": "a", "demo02": "a", "demo03": "a"}
    assert snap.budget_kw == 40.0
    gpu = snap.nodes[0].gpus[0]
    assert gpu.uuid.startswith("GPU-")
    assert (gpu.power_limit_min_w, gpu.power_limit_max_w) == (200.0, 700.0)
    assert live.persistent


def test_power_cap_is_clamped_enforced_and_audited(live: PolledServices) -> None:
    live.snapshot()
    answers = live.set_power_cap("demo02", 150)
    assert len(answers) == 8
    assert all(a["enforced_w"] == 200.0 and a["clamped"] for a in answers)
    wait_for(lambda: live.snapshot().node("demo02").power_limit_w == 1600.0, 5, "the new limits in the samples")
    store = open_store(live.config.store_path)
    try:
        audit = store.audit(0, ["demo02"])
    finally:
        store.close()
    assert len(audit) == 8
    assert {(a.before_w, a.after_w, a.clamped) for a in audit} == {(700.0, 200.0, True)}
    assert any(e.kind == "power_limit" and e.node == "demo02" for e in live.snapshot().events)


def test_drain_and_resume_persist_in_the_store(live: PolledServices) -> None:
    live.snapshot()
    live.drain("demo03", "fan")
    assert live.snapshot().drained == frozenset({"demo03"})
    store = open_store(live.config.store_path)
    try:
        assert store.drained_nodes()["demo03"].reason == "fan"
        live.resume("demo03")
        assert store.drained_nodes() == {}
    finally:
        store.close()
    kinds = [e.kind for e in live.snapshot().events if e.node == "demo03"]
    assert kinds[-2:] == ["drain", "resume"]


def test_a_killed_agent_shows_degraded_and_comes_back(live: PolledServices) -> None:
    """A broken link degrades its node at once, as the controller's (docs/controller.md, "Node states")."""
    assert states(live)["demo01"] == "up"
    agent_process("demo01").kill()
    wait_for(lambda: states(live)["demo01"] != "up", 15.0, "demo01 no longer up")
    assert states(live)["demo02"] == "up"
    assert [e.kind for e in live.snapshot().events if e.node == "demo01"][:1] == ["node_degraded"]
    wait_for(lambda: states(live)["demo01"] == "up", 15.0, "demo01 reconnected")


def test_a_stopped_agent_never_blocks_a_snapshot(live: PolledServices, monkeypatch: pytest.MonkeyPatch) -> None:
    live.snapshot()
    session = live._nodes["demo02"].session
    assert session is not None
    asked: list[str] = []

    def recorded(name: str):
        real = getattr(session, name)

        def call(*args, **kwargs):
            asked.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("request", "sample"):  # a snapshot that asked the stopped agent would wait for its answer
        monkeypatch.setattr(session, name, recorded(name))
    proc = agent_process("demo02")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: states(live)["demo02"] == "degraded", 15.0, "demo02 degraded")
        assert live.snapshot().node("demo02").gpus  # the last values stay visible, marked stale
        assert asked == []  # read from what the stream delivered: no request to the stopped agent
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_for(lambda: states(live)["demo02"] == "up", 5.0, "demo02 up again")


def test_a_silent_agent_raises_degraded_down_and_up_events(
    live_half_second: PolledServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = live_half_second
    proc = agent_process("demo02")
    os.kill(proc.pid, signal.SIGSTOP)  # no broken stream, no failure: only silence says it
    try:
        wait_for(lambda: states(live)["demo02"] == "down", 15.0, "demo02 down")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_for(lambda: states(live)["demo02"] == "up", 15.0, "demo02 up again")
    events = [e for e in live.snapshot().events if e.node == "demo02"]
    assert [(e.kind, e.severity) for e in events] == [
        ("node_degraded", "warning"),
        ("node_down", "error"),
        ("node_up", "info"),
    ]
    assert events[0].message == "demo02 is degraded: 1 sample missed."  # as the controller records it
    assert events[2].message == "demo02 is up"


def test_rows_appear_as_nodes_answer_whatever_a_mute_node_does(tmp_path: Path) -> None:
    import socket

    from factoryctl.config import parse_config

    mute = socket.create_server(("127.0.0.1", 0))  # accepts, never sends an SSH banner
    port = mute.getsockname()[1]
    yaml = f"""\
name: mix
ssh: {{connect_timeout_s: 20, user: root}}
nodes:
  l[1-2]: {{transport: local, sim: h100-sxm, gpus: 2}}
  mute: {{host: 127.0.0.1, port: {port}, sim: h100-sxm, gpus: 2}}
"""
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"))
    try:
        first = services.snapshot()  # returns with the mute node as it is (it used to wait for every node)
        assert {n.node: n.state for n in first.nodes}["mute"] == "connecting"
        wait_for(lambda: states(services)["l2"] == "up" and states(services)["l1"] == "up", 6.0, "local nodes up")
        assert states(services)["mute"] == "connecting"
        assert not [e for e in services.snapshot().events if e.node == "mute"]
        services.close()  # does not wait out the mute node's connect: it is still connecting when close returns
        assert services._nodes["mute"].connecting
        for node in ("l1", "l2"):  # the connected ones stopped their agents
            with pytest.raises(AssertionError, match="no agent process"):
                agent_process(node)
    finally:
        services.close()
        mute.close()


def test_judges_racing_across_a_change_announce_each_state_once(tmp_path: Path) -> None:
    """A judge held between computing a state and storing it must not store its older verdict over a newer one."""
    import threading

    from factoryctl.model.telemetry import NodeSample

    services = PolledServices(demo_config(tmp_path / "state"), "demo01", use_store=False)  # threads never started
    link = services._nodes["demo01"]
    real_sample, reached, gate = link.sample, threading.Event(), threading.Event()

    def held_sample(now: float, now_mono: float) -> NodeSample:
        sample = real_sample(now, now_mono)
        if threading.current_thread().name == "held":
            reached.set()
            gate.wait(1.0)  # preempted right after computing its verdict (a judge under the lock waits this out)
        return sample

    link.sample = held_sample  # type: ignore[method-assign]
    clock = [1000.0]
    services.monotonic = lambda: clock[0]
    link.latest, link.shown = NodeSample(node="demo01", time=time.time()), "up"
    link.health.seen(1000.0)
    clock[0] += 2.0 * services.interval_s  # two intervals silent: degraded
    held = threading.Thread(target=link.judge, name="held")
    held.start()
    assert reached.wait(30.0)
    clock[0] = 1000.0 + services.down_after_s + services.interval_s  # then down
    link.judge()
    gate.set()
    held.join()
    link.judge()
    assert [e.kind for e in services._events] == ["node_degraded", "node_down"]
    services.close()


def test_unknown_node_actions_are_usage_errors(live: PolledServices) -> None:
    from factoryctl.errors import UsageError

    with pytest.raises(UsageError):
        live.drain("demo08", "not watched")


@pytest.fixture
def slow_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect after 5-10 s, not 0.5-1 s: a broken link degrades its node at once and silence takes it down only
    after 3.5 intervals (as the controller judges it), so a quicker reconnect would bring it back up before that."""
    monkeypatch.setattr(services_polled, "reconnect_backoff", lambda config: Backoff(base_s=10.0, cap_s=30.0))


async def test_dashboard_on_live_agents_shows_a_node_going_down(
    slow_reconnect: None, live_half_second: PolledServices
) -> None:
    app = make_app(live_half_second)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        assert table.rows_shown == ["demo01", "demo02", "demo03"]
        assert table.cell_text("demo03", "state") == "up"
        agent_process("demo03").kill()
        await wait_until(pilot, lambda: table.cell_text("demo03", "state") == "down", 15.0, "demo03 down")
        await pilot.press("down", "down", "enter")
        # Its agent is restarted a second after it died, so by the time a loaded machine has drawn the node screen
        # the node may be up again: the node's events say it went down either way.
        events = app.screen.query_one("#node-events")
        await wait_until(pilot, lambda: "down: " in plain(events.render()), 3.0, "demo03's down event")


def test_an_injected_ecc_error_marks_the_node_unhealthy_with_an_event(live: PolledServices) -> None:
    live.snapshot()
    # what `factoryctl sim inject demo01/2 --ecc` does, on the node's simulated state (its agent reads it)
    SimNode(live.config.state_dir / "sim", "demo01", factory=live.config.name).inject("ecc", [2])
    wait_for(lambda: not live.snapshot().node("demo01").healthy, 5.0, "demo01 unhealthy")
    events = [e for e in live.snapshot().events if e.node == "demo01"]
    assert [e.kind for e in events] == ["ecc"]
    assert "demo01/2" in events[0].message
