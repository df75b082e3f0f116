"""Collector test helpers: a fleet of fake agents (tests/telemetry/fake_agent.py) behind the real AgentSession."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import waiting

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.transport.base import CommandResult
from factoryctl.transport.session import AgentSession

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")


class FakeTransport:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        raise NotImplementedError

    def start_agent(self, timeout: float) -> AgentSession:
        raise NotImplementedError

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


class FakeFleet:
    """Starts fake agents as the collector's connector; tests pick per-node behaviour and kill agents."""

    def __init__(self) -> None:
        self.args: dict[str, list[str]] = {}
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.refuse: set[str] = set()

    def connector(self, config: FactoryConfig) -> Callable[[NodeSpec], tuple[FakeTransport, AgentSession]]:
        def connect(node: NodeSpec) -> tuple[FakeTransport, AgentSession]:
            if node.name in self.refuse:
                raise NodeError(node.name, "refused", f"{node.name}: connection refused.")
            argv = [sys.executable, str(FAKE_AGENT), "--node", node.name, *self.args.get(node.name, [])]
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.procs.setdefault(node.name, []).append(proc)
            assert proc.stdin is not None
            assert proc.stdout is not None
            session = AgentSession(node.name, proc.stdin, proc.stdout)
            session.wait_hello(10)
            return FakeTransport(proc), session

        return connect

    def kill(self, node: str) -> None:
        self.procs[node][-1].kill()

    def stop_all(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)


class Sink:
    """Keeps what a link delivers (the writer's side of `NodeLink`)."""

    def __init__(self) -> None:
        self.samples: list[NodeSample] = []
        self.errors: list[NodeError] = []
        self.clock_bounds: list[tuple[str, float]] = []  # (node, its time - when it was asked)

    def offer(self, sample: NodeSample) -> None:
        self.samples.append(sample)

    def link_failed(self, node: str, error: NodeError) -> None:
        self.errors.append(error)

    def link_connected(self, node: str) -> None:
        pass

    def samples_missed(self, node: str, count: int) -> None:
        pass

    def sample_failed(self, node: str, error: NodeError) -> None:
        self.errors.append(error)

    def clock_bounded(self, node: str, node_time: float, asked_at: float) -> None:
        self.clock_bounds.append((node, node_time - asked_at))


def make_config(tmp_path: Path, nodes: str = "n[1-2]", interval: float = 0.2, extra: str = "") -> FactoryConfig:
    text = f"name: t\nnodes:\n  {nodes}: {{transport: local}}\n{extra}controller:\n  interval_s: {interval}\n"
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    return parse_config(text, path, state_dir=tmp_path / "state")


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` until true (the fleet tests' shorter default timeout and faster poll)."""
    waiting.wait_for(check, timeout, poll_s=0.05)
