"""The dashboard's data services at fleet scale and with hung nodes (session 22's review).

A power cap to a node whose agent hangs (SIGSTOP) waited for the link to give up on the session, 10 s and more, and
was then said to have "exited"; a controller running with every node down made each dashboard opened run its own
collector for 30 s and call the controller late; a burst of 1,984 nodes going down was folded as "500 nodes down"
(or 200 from the store); the judge rebuilt every node's sample ten times a second. Real agents on the simulated
driver, real SQLite stores, a real process holding the controller's lock; nothing is timed.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from agent_processes import agents_of
from waiting import wait_for

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.errors import NodeError
from factoryctl.live.event_folding import fold_state_events
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_auto import AutoServices
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.model.telemetry import NodeSample
from factoryctl.store import open_store
from factoryctl.store.lock import lock_path
from factoryctl.store.rows import STATS_KEY, Event, NodeState
from factoryctl.telemetry.health import silence_state
from factoryctl.transport.session import AgentSession

HOLD_LOCK = (
    "import pathlib, sys\n"
    "from factoryctl.store.lock import ControllerLock\n"
    "lock = ControllerLock(pathlib.Path(sys.argv[1]))\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def factory(tmp_path: Path, nodes: str, interval_s: float = 1.0) -> FactoryConfig:
    yaml = f"name: t\ncontroller: {{interval_s: {interval_s}}}\nssh: {{port: 9}}\nnodes:\n{nodes}"
    return parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state")


# ---------------------------------------------------------------------------------------------- a cap to a hung node


def test_a_session_ended_by_its_owner_after_silence_does_not_say_the_agent_exited() -> None:
    """The link ends a silent session (its stall watch), then the agent: a request waiting was told "exited"."""
    to_us_r, to_us_w = os.pipe()
    to_agent_r, to_agent_w = os.pipe()
    with open(to_us_r, "rb") as stdout, open(to_agent_w, "wb") as stdin, open(to_agent_r, "rb"):
        agent_out = open(to_us_w, "wb")  # noqa: SIM115 - closed by on_close, as a killed agent's end of the pipe
        session = AgentSession("n1", stdin, stdout, on_close=agent_out.close)
        agent_out.write(b'{"type": "hello", "protocol": 1}\n')
        agent_out.flush()
        raised: list[BaseException] = []

        def cap() -> None:
            try:
                session.request("set_power_limit", timeout=60.0, watts=300)
            except NodeError as exc:
                raised.append(exc)

        asking = threading.Thread(target=cap)
        asking.start()
        wait_for(lambda: session.hello_info, 10.0, "the hello read")
        time.sleep(1.1)  # the agent's silence, which the sentence states in whole seconds
        session.close(timeout=0.1)
        asking.join(10.0)
    (error,) = raised
    assert isinstance(error, NodeError)
    assert error.kind == "timeout"
    assert "exited" not in error.message
    assert error.message.startswith("the agent sent nothing for 1 s, so factoryctl ended its session.")


@pytest.fixture
def one_node(tmp_path: Path) -> Iterator[PolledServices]:
    config = factory(tmp_path, "  n1: {transport: local, sim: h100-sxm, gpus: 2}\n", interval_s=0.5)
    services = PolledServices(config, use_store=False)
    try:
        yield services
    finally:
        for agent in agents_of("n1"):  # a stopped agent must be able to hear its end
            agent.resume()
        services.close()


def test_a_cap_to_a_node_that_hangs_ends_when_it_is_judged_down_as_a_timeout(one_node: PolledServices) -> None:
    services = one_node
    wait_for(lambda: services.snapshot().node("n1").state == "up", 30.0, "n1 up")  # type: ignore[union-attr]
    (agent,) = agents_of("n1")
    agent.suspend()  # kill -STOP: its link stays connected, its session silent
    raised: list[BaseException] = []

    def cap() -> None:
        try:
            services.set_power_cap("n1", 300.0)
        except NodeError as exc:
            raised.append(exc)

    asking = threading.Thread(target=cap)
    asking.start()
    asking.join(60.0)
    (error,) = raised
    assert isinstance(error, NodeError)
    assert (error.node, error.kind) == ("n1", "timeout")
    assert "did not answer the power cap within" in error.message
    assert "is down" in error.message
    assert "exited" not in error.message
    assert services.snapshot().node("n1").state == "down"  # type: ignore[union-attr]
    with pytest.raises(NodeError, match="no power cap was set"):  # down already: not asked at all
        services.set_power_cap("n1", 300.0)
    assert agent.status() == psutil.STATUS_STOPPED  # it was never ended for it: the link's stall is not yet due


# ------------------------------------------------------------------------- a controller with every node down


class LockHolder:
    """A live process holding the controller's lock until `release` ends it."""

    def __init__(self, config: FactoryConfig) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(config.state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "held\n"
        self.pid = self.proc.pid

    def release(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def running_for_minutes(tmp_path: Path) -> Iterator[tuple[FactoryConfig, LockHolder]]:
    """A controller that took its lock 5 minutes ago and judged its two nodes down since: no sample stored."""
    config = factory(tmp_path, "  n[1-2]: {host: 127.0.0.1}\n")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    holder = LockHolder(config)
    try:
        took = time.time() - 300
        os.utime(lock_path(config.state_dir), (took, took))
        store = open_store(config.store_path)
        try:
            store.add_events([Event(took + 1, "controller_start", f"controller {holder.pid} started")])
            down = [NodeState(f"n{i}", "down", took + 2, None, "refused", "refused.") for i in (1, 2)]
            store.write([], states=down)
        finally:
            store.close()
        yield config, holder
    finally:
        holder.release()


def write_figures(config: FactoryConfig, pid: int, up: int) -> None:
    """Its figures, as `Controller._write_stats` writes them every 10 s (`controller status` reads them)."""
    store = open_store(config.store_path)
    try:
        figures = {"pid": pid, "started_at": time.time() - 300, "written_at": time.time(), "nodes": 2, "up": up}
        store.set_meta(STATS_KEY, json.dumps(figures))
    finally:
        store.close()


def test_the_start_up_grace_counts_from_the_lock_not_from_the_dashboards_opening(
    running_for_minutes: tuple[FactoryConfig, LockHolder],
) -> None:
    config, _ = running_for_minutes
    services = AutoServices(config, check_every_s=0.0)
    try:
        assert services.source == "store"  # its grace ended minutes ago: no collector of the dashboard's own
    finally:
        services.close()


def test_a_controller_writing_its_figures_with_no_node_up_is_followed_and_not_late(
    running_for_minutes: tuple[FactoryConfig, LockHolder],
) -> None:
    config, holder = running_for_minutes
    write_figures(config, holder.pid, up=0)
    services = AutoServices(config, check_every_s=0.0)
    try:
        snap = services.snapshot()
        assert services.source == "store"
        assert snap.late_controller is None
        assert not [e.message for e in snap.events if e.kind == "source"]
        assert {n.state for n in snap.nodes} == {"down"}
        write_figures(config, holder.pid, up=1)  # a node up, yet no sample stored: that one is late
        snap = services.snapshot()
        assert snap.late_controller is not None
    finally:
        services.close()


# --------------------------------------------------------------------------------------- folding a big outage

MANY = 520  # more than the 500 events the collector kept, and than the 200 the store's reader read


def test_the_store_reader_folds_every_node_of_a_burst(tmp_path: Path) -> None:
    config = factory(tmp_path, f"  n[001-{MANY}]: {{host: 127.0.0.1}}\n")
    at = time.time() - 60
    store = open_store(config.store_path)
    try:
        names = [f"n{i:03d}" for i in range(1, MANY + 1)]
        said = "refused the connection."
        store.add_events(
            [Event(at + i / 100, "node_down", f"{n} is down: {said}", n, None, "error") for i, n in enumerate(names)]
        )
    finally:
        store.close()
    services = StoreServices(config)
    try:
        lines = [e.message for e in services.snapshot().events if e.kind == "node_down"]
    finally:
        services.close()
    assert lines == [f"{MANY} nodes down: refused the connection. (n[001-{MANY}]; over 5 s)"]


def test_the_collector_folds_every_node_of_a_burst(tmp_path: Path) -> None:
    """Nodes whose SSH port refuses: each is down at its first failure, one event each."""
    config = factory(tmp_path, f"  n[001-{MANY}]: {{host: 127.0.0.1}}\n")
    services = PolledServices(config, use_store=False, connect_timeout_s=5.0)
    try:

        def all_down() -> bool:
            return all(n.state == "down" for n in services.snapshot().nodes)

        wait_for(all_down, 120.0, "every node down", 0.5)
        lines = [e.message for e in services.snapshot().events if e.kind == "node_down"]
    finally:
        services.close()
    assert len(lines) == 1
    assert lines[0].startswith(f"{MANY} nodes down")


def test_a_burst_cut_by_a_limit_says_it_counts_at_least() -> None:
    events = [DashboardEvent(100.0 + i, f"n{i}", "node_down", f"n{i} is down: refused.", "error") for i in range(5)]
    (line,) = fold_state_events(events, cut_at=99.0)
    assert line.message.startswith("5+ nodes down")
    (line,) = fold_state_events(events)
    assert line.message.startswith("5 nodes down")


# ------------------------------------------------------------------------------------------- the judge's work


def test_the_judge_leaves_alone_nodes_only_a_sample_or_failure_can_change(tmp_path: Path) -> None:
    config = factory(tmp_path, "  n[1-3]: {host: 127.0.0.1}\n")
    services = PolledServices(config, use_store=False, connect_timeout_s=5.0)
    try:
        wait_for(lambda: all(n.state == "down" for n in services.snapshot().nodes), 60.0, "every node down")
        judged: list[str] = []
        loops: list[int] = []
        for name, node in services._nodes.items():
            original = node.judge

            def counting(now: float | None = None, name: str = name, original: Any = original) -> Any:
                if threading.current_thread().name == "dash-judge":  # a reconnect's failure judges on its own
                    judged.append(name)
                return original(now)

            node.judge = counting  # type: ignore[method-assign]
        wait = services.stop_event.wait

        def counted_wait(timeout: float | None = None) -> bool:
            loops.append(1)
            return wait(timeout)

        services.stop_event.wait = counted_wait  # type: ignore[method-assign]
        wait_for(lambda: len(loops) >= 5, 30.0, "five rounds of the judge")
        assert judged == []  # down: nothing but a sample or a failure (which judge it at once) changes it
    finally:
        services.close()


@pytest.mark.parametrize("interval_s", [0.5, 1.0, 5.0])
def test_a_silent_node_is_due_by_the_time_the_rule_changes_its_state(tmp_path: Path, interval_s: float) -> None:
    """What the judge thread skips (`due_at` not reached) is never a change `silence_state` makes by then."""
    config = factory(tmp_path, "  n1: {transport: local, sim: h100-sxm}\n", interval_s)
    services = PolledServices(config, use_store=False)  # threads never started: judged by hand, on a chosen clock
    clock = [1000.0]
    services.monotonic = lambda: clock[0]
    try:
        node = services._nodes["n1"]
        node.offer(NodeSample(node="n1", time=time.time()))  # heard at 1000.0, and judged
        changes = []
        for tenths in range(1, 60):
            clock[0] = 1000.0 + tenths / 10 * interval_s
            due, before = node.due_at, node.shown
            node.judge()
            assert node.shown == silence_state(1000.0, clock[0], interval_s)
            if node.shown != before:
                changes.append(node.shown)
                assert due <= clock[0]  # the judge thread would have judged it at this tick
        assert changes == ["degraded", "down"]
        assert node.due_at == math.inf  # down: only a sample or a failure changes it
    finally:
        services.close()


def test_figures_older_than_the_last_sample_say_nothing_of_now() -> None:
    """They lag up to 10 s: `up: 0` written at its start, nodes up since, then stopped, is a late controller."""
    from factoryctl.live.services_store import ControllerView

    now = time.time()
    lagging = ControllerView(4242, stored_at=now - 10, figures_at=now - 15, figures_up=0)
    assert lagging.late_for(now, 1.0) == pytest.approx(10, abs=0.01)
    since = ControllerView(4242, stored_at=now - 10, figures_at=now - 5, figures_up=0)
    assert since.late_for(now, 1.0) is None
    old = ControllerView(4242, stored_at=None, figures_at=now - 60, figures_up=0)
    assert old.late_for(now, 1.0) == math.inf
