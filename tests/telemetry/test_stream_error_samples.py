"""A streamed sample the agent could not take (`ok: false`) is the node's failure, never an empty sample.

The session made one into a node `up` with 0 GPUs stamped 1970 (it carries no `result`), and the link counted it as
heard: a node whose driver failed showed up, and errors that kept coming never made the link reconnect. Now the
error goes to the stream's `on_error`, the link reports it to its sink with the agent's reason and does not count it
as heard: a node up stays up at the first one (tests/telemetry/test_error_sample_hysteresis.py), then silence makes
it `degraded` and `down` with that reason (`down` at the first one when it never sent a good sample), `up` again at
its next good sample, and its link is rebuilt on a fresh agent when only errors come.

The session and link tests speak the protocol over real pipes; the last test runs the real agent on the simulated
driver under a live in-process controller, and asks `nodes` and `events` as an operator would.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakefleet import Sink
from waiting import wait_for

from factoryctl.config import load_config, parse_config
from factoryctl.controller import Controller
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.sim.storage import state_path
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.telemetry.writer import StoreWriter
from factoryctl.transport.session import AgentSession

WAIT_S = 30.0  # for what must come: generous, never a measure of how fast
INTERVAL_S = 0.2
SMI_DOWN = "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
GPU = {"index": 0, "uuid": "GPU-0", "name": "NVIDIA H100 80GB HBM3", "power_w": 312.5, "power_limit_w": 700.0}


class PipeAgent:
    """The agent's end of a session's real pipes: hello, answers to `stream`/`stop`/`shutdown`, then what it is told.

    Once streaming, it sends one message per interval from its own thread, as an agent does: a good sample, or the
    error sample an agent sends when its driver cannot be read (`failing`), or nothing (`silent`).
    """

    def __init__(self, node: str = "n1") -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self.node = node
        self._requests = os.fdopen(request_r, "rb")
        self._replies = os.fdopen(reply_w, "wb")
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.stream_id: int | None = None
        self.failing: tuple[str, str] | None = None  # (kind, message) of the error samples to send
        self.silent = False
        self.sent: queue.Queue[dict[str, Any]] = queue.Queue()  # every stream message, as sent
        self.session = AgentSession(node, os.fdopen(request_w, "wb"), os.fdopen(reply_r, "rb"), on_close=self.close)
        self._send({"type": "hello", "protocol": 1, "agent_version": "9", "backend": "smi", "node": node, "gpus": 1})
        threading.Thread(target=self._serve, daemon=True, name=f"pipe-agent-{node}").start()

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._replies.write((json.dumps(message) + "\n").encode())
            self._replies.flush()

    def _serve(self) -> None:
        for raw in self._requests:
            request = json.loads(raw)
            rid, op = request["id"], request["op"]
            if op == "stream":
                self._send({"id": rid, "ok": True, "result": {"streaming": True}})
                self.stream_id = rid
                threading.Thread(target=self._stream, args=(rid,), daemon=True).start()
            elif op == "shutdown":
                self._send({"id": rid, "ok": True, "result": {"bye": True}})
                break
            else:
                self._send({"id": rid, "ok": True, "result": {}})
        self.close()
        self._requests.close()

    def _stream(self, rid: int) -> None:
        while not self._closed.wait(INTERVAL_S):
            if self.silent:
                continue
            message = self.message(rid)
            self._send(message)
            self.sent.put(message)

    def message(self, rid: int) -> dict[str, Any]:
        """The stream's next message: an error sample while `failing`, else a good sample."""
        if self.failing is not None:
            kind, text = self.failing
            return {"id": rid, "type": "sample", "ok": False, "error": {"kind": kind, "message": text}}
        return {"id": rid, "type": "sample", "result": {"time": time.time(), "backend": "sim", "gpus": [GPU]}}

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._replies.close()


@pytest.fixture
def agents() -> Iterator[list[PipeAgent]]:
    started: list[PipeAgent] = []
    yield started
    for agent in started:
        agent.session.close(timeout=WAIT_S)  # asks the agent to exit, as a link does; closes the session's pipes
        agent.close()


class PipeTransport:
    """What the link closes after the session: nothing but the pipes, which the session closes itself."""

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------- the session


def test_an_error_sample_goes_to_on_error_and_never_becomes_a_sample(agents: list[PipeAgent]) -> None:
    agent = PipeAgent()
    agents.append(agent)
    agent.session.wait_hello(WAIT_S)
    samples: queue.Queue[NodeSample] = queue.Queue()
    errors: queue.Queue[NodeError] = queue.Queue()
    agent.failing = ("driver", SMI_DOWN)
    agent.session.stream(INTERVAL_S, samples.put, timeout=WAIT_S, on_error=errors.put)
    driver = errors.get(timeout=WAIT_S)
    assert (driver.node, driver.kind, driver.message) == ("n1", "driver", SMI_DOWN)
    assert driver.hint == "check the NVIDIA driver on the node."  # as a `sample` request's error would have
    agent.failing = ("agent", "IsADirectoryError(21, 'Is a directory')")
    while (error := errors.get(timeout=WAIT_S)).kind == "driver":
        pass
    assert (error.node, error.message) == ("n1", "`sample` failed: IsADirectoryError(21, 'Is a directory')")
    assert samples.empty()  # was a NodeSample(time=0.0, state='up', gpus=()) per error
    agent.failing = None
    sample = samples.get(timeout=WAIT_S)
    assert sample.state == "up"
    assert sample.time > 1e9
    assert [g.power_w for g in sample.gpus] == [312.5]
    assert agent.session.failure is None  # the stream goes on through its errors


def test_without_on_error_an_error_sample_is_dropped_and_a_failing_callback_is_counted(
    agents: list[PipeAgent],
) -> None:
    quiet, loud = PipeAgent("n1"), PipeAgent("n2")
    agents.extend([quiet, loud])
    samples: queue.Queue[NodeSample] = queue.Queue()
    quiet.failing = ("driver", SMI_DOWN)
    quiet.session.stream(INTERVAL_S, samples.put, timeout=WAIT_S)
    assert quiet.sent.get(timeout=WAIT_S)["ok"] is False
    quiet.sent.get(timeout=WAIT_S)
    assert samples.empty()
    quiet.failing = None
    assert samples.get(timeout=WAIT_S).gpus

    def broken(error: NodeError) -> None:
        raise RuntimeError("a bug in the caller")

    loud.failing = ("driver", SMI_DOWN)
    loud.session.stream(INTERVAL_S, samples.put, timeout=WAIT_S, on_error=broken)
    wait_for(lambda: loud.session.callback_errors >= 2, WAIT_S, "two failing on_error calls")
    loud.failing = None
    wait_for(lambda: any(s.node == "n2" for s in list(samples.queue)), WAIT_S, "n2's good sample")
    assert loud.session.failure is None


# ------------------------------------------------------------------------------------------------- the link


def spec(tmp_path: Path) -> NodeSpec:
    text = "name: t\nnodes:\n  n1: {transport: local}\n"
    return parse_config(text, tmp_path / "factory.yaml", state_dir=tmp_path / "state").nodes["n1"]


def connector(agents: list[PipeAgent], failing: tuple[str, str] | None) -> Any:
    """Each connect starts a new pipe agent, sending error samples from its first one when `failing`."""

    def connect(node: NodeSpec) -> tuple[PipeTransport, AgentSession]:
        agent = PipeAgent(node.name)
        agent.failing = failing
        agents.append(agent)
        agent.session.wait_hello(WAIT_S)
        return PipeTransport(), agent.session

    return connect


def test_the_store_says_why_a_node_fails_and_it_is_up_at_its_next_sample(
    tmp_path: Path, agents: list[PipeAgent]
) -> None:
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, INTERVAL_S)
    writer.set_nodes(["n1"])
    writer.start()
    link = NodeLink(spec(tmp_path), INTERVAL_S, connector(agents, ("driver", SMI_DOWN)), writer, Backoff(), stall_s=600)
    link.start()
    try:
        wait_for(lambda: writer.states()["n1"].error == "driver", WAIT_S, "n1's driver error")
        never_up = writer.states()["n1"]  # a node that only ever sent errors: down with their reason, never up
        assert (never_up.state, never_up.message) == ("down", SMI_DOWN)
        (agent,) = agents
        agent.failing = None
        wait_for(lambda: writer.states()["n1"].state == "up", WAIT_S, "n1 up at its first good sample")
        agent.failing = ("agent", "OSError(5, 'Input/output error')")
        wait_for(lambda: writer.states()["n1"].state == "degraded", WAIT_S, "n1 degraded once a sample is missed")
        degraded = writer.states()["n1"]
        assert (degraded.error, degraded.message) == ("agent", "`sample` failed: OSError(5, 'Input/output error')")
        wait_for(lambda: writer.states()["n1"].state == "down", WAIT_S, "n1 down after three samples missed")
        assert writer.states()["n1"].message == degraded.message  # was "3 samples missed."
        agent.failing = None
        wait_for(lambda: writer.states()["n1"].state == "up", WAIT_S, "n1 up again")
        assert link.connects == 1  # came back on the same session, at its next sample
    finally:
        link.stop()
        link.join(WAIT_S)
        writer.stop()
    said = [(e.kind, e.message) for e in store.events(0) if e.kind.startswith("node_")]
    assert said == [
        ("node_down", f"n1 is down: {SMI_DOWN}"),
        ("node_up", "n1 is up"),
        ("node_degraded", "n1 is degraded: `sample` failed: OSError(5, 'Input/output error')"),
        ("node_down", "n1 is down: `sample` failed: OSError(5, 'Input/output error')"),
        ("node_up", "n1 is up"),
    ]
    (series,) = store.history(["n1"], "power_w", 0, time.time() + 3600)
    assert series.points
    assert min(p.time for p in series.points) > 1e9  # no sample of 1970, with no GPU, was stored for an error
    store.close()


def test_the_same_error_sample_again_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An agent sends its error every interval: one warning (the state change), the others at debug level."""
    store = Store(tmp_path / "factory.db")
    now = [time.time()]
    writer = StoreWriter(store, 1.0, clock=lambda: now[0])
    writer.set_nodes(["n1"])
    writer.offer(NodeSample("n1", now[0], gpus=()))
    error = NodeError("n1", "driver", SMI_DOWN)  # the log names the node, once
    with caplog.at_level(logging.DEBUG, logger="factoryctl.telemetry"):
        for _ in range(4):  # one per interval: up at the first two, degraded at the third (a sample missed)
            writer.sample_failed("n1", error)
            writer.flush()
            now[0] += 1.0
    store.close()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if SMI_DOWN in r.getMessage()]
    assert said == [
        (logging.DEBUG, f"n1: {SMI_DOWN}"),
        (logging.DEBUG, f"n1: {SMI_DOWN}"),
        (logging.WARNING, f"n1 is degraded: {SMI_DOWN}"),
        (logging.DEBUG, f"n1: {SMI_DOWN}"),
    ]


def test_a_link_whose_agent_only_sends_errors_is_rebuilt_saying_why(tmp_path: Path, agents: list[PipeAgent]) -> None:
    sink = Sink()
    failing = ("driver", SMI_DOWN)
    link = NodeLink(spec(tmp_path), INTERVAL_S, connector(agents, failing), sink, Backoff(0.1, 0.2), stall_s=1.0)
    link.start()
    try:
        wait_for(lambda: link.connects >= 2, WAIT_S, "a reconnect")  # an error was heard as a sample: never
    finally:
        link.stop()
        link.join(WAIT_S)
    assert sink.samples == []
    assert sink.errors
    assert {(e.kind, e.message) for e in sink.errors} == {("driver", SMI_DOWN)}  # not "no sample for 1 s"


# ------------------------------------------------------------------------------------------------- end to end


def break_driver(state_dir: Path, node: str) -> Path:
    """Make the simulated driver of `node` fail every read, as a driver that cannot be read at all; returns the lock.

    Its state file is damaged, and repairing it needs the lock beside it, whose path is now a directory: every NVML
    call of the running agent fails with NVML_ERROR_UNKNOWN, as pynvml raises nothing but NVMLError. Removing the
    directory lets the next read repair the file (set aside as `.bad`) and start afresh.
    """
    state = state_path(state_dir / "sim", "drv", node)
    lock = state.with_suffix(".lock")
    state.write_text("not JSON: the disk under the simulated driver failed")
    lock.unlink()
    lock.mkdir()
    return lock


def node_events(store_path: Path, node: str) -> list[tuple[str, str]]:
    store = Store(store_path, readonly=True)
    try:
        return [(e.kind, e.message) for e in store.events(0, [node]) if e.kind.startswith("node_")]
    finally:
        store.close()


def latest_power(cli: Any, path: Path, node: str) -> tuple[Any, Any]:
    """(power_w, its null reason) of `node`'s GPU 0 as `gpus` shows it."""
    shown = cli("--config", str(path), "gpus", node, "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    (gpu,) = shown.json()["items"]
    return gpu["power_w"], gpu["null_reasons"].get("power_w")


@pytest.mark.slow
def test_a_driver_that_fails_every_call_gives_null_values_with_why_and_they_come_back(tmp_path: Path, cli: Any) -> None:
    """As a real driver: each failed NVML call is that field's null with NVML's reason, never a made-up value.

    (A whole sample fails only when the agent itself fails, not its driver calls: the error-sample tests above run
    that path with stand-in agents.)
    """
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: drv\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local, sim: h100-sxm, gpus: 1}}\n"
        f"controller:\n  interval_s: {INTERVAL_S}\n  reconnect_max_s: 1\n"
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    store_path = tmp_path / "state" / "factory.db"
    try:
        wait_for(lambda: controller.collector is not None and controller.collector.stats()["up"] == 2, WAIT_S)
        lock = break_driver(tmp_path / "state", "n2")
        wait_for(lambda: latest_power(cli, path, "n2") == (None, "unknown error"), WAIT_S, "n2's power unknown")
        assert latest_power(cli, path, "n1")[0] is not None
        shutil.rmtree(lock)  # the disk is back: the agent's next read repairs the state
        wait_for(lambda: latest_power(cli, path, "n2")[0] is not None, WAIT_S, "n2's power back")
        assert controller.collector is not None
        assert controller.collector.links["n2"].connects == 1  # on the same agent all along
    finally:
        controller.request_stop()
        runner.join(30)
    store = Store(store_path, readonly=True)
    try:
        (series,) = store.history(["n2"], "power_w", 0, time.time() + 3600)
        assert series.points, "n2's good samples were stored"
        assert min(p.time for p in series.points) > 1e9  # never a sample of 1970 for an error
    finally:
        store.close()
