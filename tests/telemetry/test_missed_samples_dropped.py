"""Samples a node's agent dropped while the controller did not read are counted in the controller's `dropped`.

The agent keeps sampling while its reader is stalled and holds a bounded backlog; past it, the oldest samples are
dropped and the next sample out carries `missed: N` (docs/agent-protocol.md, Output backlog). The controller ignored
the field, so a stall's lost samples were in no counter. Here a real agent (from source, its backlog cut from 120 s
to 1 s of samples so the test stalls for seconds, not minutes) streams through a real link into a `StoreWriter`
whose reader thread is held up by the first sample's delivery, as a stopped or swapped-out controller would be.
The stream's interval is 0.2 s: at 0.1 s, an agent a loaded machine woke up a tenth of a second late fell behind
and skipped that instant, as documented (docs/agent-protocol.md, Sample timing), a gap no `missed` counts (about
one instant in 400 with three CPU hogs on two cores: most runs of this test failed). So that its output still
overflows within the stall, the agent has one GPU and its stdout pipe is cut to 4 KiB.
"""

from __future__ import annotations

import fcntl
import itertools
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.config import parse_config
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.telemetry.writer import StoreWriter
from factoryctl.transport.session import AgentSession

INTERVAL_S = 0.2
STALL_S = 3.0  # some 15 samples: ~6 fill the pipe, 5 (1 s) wait, the rest (~4) are dropped
#: The agent's stdout pipe, cut from 64 KiB to a page: some 6 samples of one GPU (650 bytes each) fill it.
PIPE_BYTES = 4096
#: The agent's own command line, its backlog bound (a module global read per stream) cut to 1 s.
AGENT = (
    "import sys, factoryctl.agent.outbox as outbox; outbox.BACKLOG_S = 1.0; from factoryctl.agent.main import main;"
    " sys.exit(main(sys.argv[1:]))"
)


class AgentProcess:
    """The link's transport: closing it ends the agent."""

    def __init__(self, state: Path) -> None:
        argv = [sys.executable, "-c", AGENT, "--node", "n1", "--sim", "h100-sxm", "--gpus", "1"]
        argv += ["--state-dir", str(state)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # before the agent writes its hello

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class StalledWriter(StoreWriter):
    """A writer whose first sample holds the session's reader until `release` is set; it keeps every sample offered."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, INTERVAL_S)
        self.offered: list[NodeSample] = []
        self.missed: list[int] = []
        self.release = threading.Event()

    def offer(self, sample: NodeSample) -> None:
        self.offered.append(sample)
        if len(self.offered) == 1:
            self.release.wait(60)  # on the reader thread: the agent's output is not read meanwhile
        super().offer(sample)

    def samples_missed(self, node: str, count: int) -> None:
        self.missed.append(count)
        super().samples_missed(node, count)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    agents: list[AgentProcess] = []
    yield agents
    for agent in agents:
        agent.close()


def _instants(samples: list[NodeSample]) -> list[int]:
    """The grid instant of each sample after the first (taken at once), as tests/agent/test_stalled_reader.py reads it.

    A stamp is at most 10 ms (the schedule's ALIGN_TOLERANCE_S) before its instant, a tenth of an interval here, but
    on a loaded machine it can be late enough to read as the next instant (800 stamped at 800.95 beside 801 itself):
    read backwards, each is at most the one before its successor's, so a late one is put back where it belongs while
    an instant no sample has stays a gap.
    """
    instants = [math.floor(s.time / INTERVAL_S + 0.1) for s in samples[1:]]
    for i in range(len(instants) - 2, -1, -1):
        instants[i] = min(instants[i], instants[i + 1] - 1)
    return instants


def _link(tmp_path: Path, started: list[AgentProcess], writer: StalledWriter) -> NodeLink:
    """A link of node n1 to a real agent (started anew at each connect, kept in `started`) into `writer`."""
    spec: NodeSpec = parse_config(
        "name: t\nnodes:\n  n1: {transport: local}\n", tmp_path / "factory.yaml", state_dir=tmp_path / "state"
    ).nodes["n1"]

    def connect(node: NodeSpec) -> tuple[Any, AgentSession]:
        agent = AgentProcess(tmp_path / "state")
        started.append(agent)
        assert agent.proc.stdin is not None
        assert agent.proc.stdout is not None
        session = AgentSession(node.name, agent.proc.stdin, agent.proc.stdout)
        session.wait_hello(30)
        return agent, session

    writer.set_nodes(["n1"])
    return NodeLink(spec, INTERVAL_S, connect, writer, Backoff(), stall_s=600)


def _wait(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_samples_an_agent_dropped_are_counted_as_dropped(tmp_path: Path, started: list[AgentProcess]) -> None:
    store = Store(tmp_path / "factory.db")
    writer = StalledWriter(store)
    link = _link(tmp_path, started, writer)
    link.start()
    try:
        _wait(lambda: bool(writer.offered))
        time.sleep(STALL_S)
        writer.release.set()
        _wait(lambda: bool(writer.missed))  # the stall over: the first sample taken after it says what was dropped
        after = len(writer.offered)
        _wait(lambda: len(writer.offered) > after + 5)  # and a second of samples after it
    finally:
        writer.release.set()
        link.stop()
        link.join(30)
        store.close()
    assert len(started) == 1, "the link reconnected: not one stream"
    instants = _instants(writer.offered)
    gaps = sum(after - before - 1 for before, after in itertools.pairwise(instants))
    assert gaps == sum(writer.missed) > 0  # every instant the agent dropped, and only those
    assert writer.counters["dropped"] == sum(writer.missed)


def test_the_samples_a_stop_gave_up_are_counted_as_dropped(tmp_path: Path, started: list[AgentProcess]) -> None:
    """A new interval while the reader is stalled: the old stream's waiting and dropped samples are in `stop`'s reply."""
    store = Store(tmp_path / "factory.db")
    writer = StalledWriter(store)
    link = _link(tmp_path, started, writer)
    link.start()
    try:
        _wait(lambda: bool(writer.offered))
        time.sleep(STALL_S)  # the pipe full, 1 s of samples waiting, the older ones dropped
        asked_at = time.time()
        link.set_interval(2 * INTERVAL_S, None)  # the link stops the stream and starts one at 0.4 s
        session = link.session
        assert session is not None
        _wait(lambda: bool(session._pending))  # `stop` sent: its reply waits behind the stalled reader
        writer.release.set()
        _wait(lambda: any(s.time > asked_at + 1.0 for s in writer.offered))
    finally:
        writer.release.set()
        link.stop()
        link.join(30)
        store.close()
    assert len(started) == 1, "the link reconnected: not one stream"
    old = [s for s in writer.offered if s.time < asked_at]
    instants = _instants(old)
    assert instants == list(range(instants[0], instants[0] + len(instants)))  # what the pipe held, none dropped
    given_up = (asked_at - old[-1].time) / INTERVAL_S  # every later sample of the old stream waited or was dropped
    assert given_up - 2 <= sum(writer.missed) <= given_up + 2, (writer.missed, given_up)
    assert writer.counters["dropped"] == sum(writer.missed)
