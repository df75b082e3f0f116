"""Fixtures: the real agent zipapp, run as a subprocess and spoken to in JSON lines."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nonroot import as_non_root

from factoryctl.transport.bundle import agent_zipapp


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return agent_zipapp(tmp_path_factory.mktemp("agent-cache"))


class Agent:
    """A running agent: send requests, read lines (with a timeout).

    Its stdout is read unbuffered, a byte at a time up to each newline, as bytes: a buffered reader took two lines
    the agent wrote together (a stream's first sample and the next reply, on a loaded machine) in one read and kept
    the second where `select` cannot see it, which then waited its 30 s for a line already read.
    """

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.proc.stdout = self.proc.stdout.detach().detach()  # type: ignore[assignment]  # the raw file, read ahead by nothing
        self.hello = self.read()
        self._next_id = 100

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next line; an agent silent for `timeout` fails the test (a hang, not a slow answer on a busy machine)."""
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the agent did not answer in time"
        line = self.proc.stdout.readline()
        assert line, f"the agent exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
        return json.loads(line)

    def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        req_id = self._next_id
        self.send_line(json.dumps({"id": req_id, "op": op, **args}))
        while True:
            msg = self.read()
            if msg.get("id") == req_id and msg.get("type") != "sample":
                return msg

    def close(self) -> int:
        """End the agent (EOF on its stdin, then a kill after 10 s) and close every pipe to it."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        return int(self.proc.returncode)


@pytest.fixture
def start_agent(zipapp: Path, tmp_path: Path) -> Iterator[Any]:
    agents: list[Agent] = []

    def start(
        *extra: str,
        node: str = "n1",
        python: str = sys.executable,
        sim: str | None = "h100-sxm",
        state_dir: Path | None = None,
        non_root: bool = False,
    ) -> Agent:
        """`non_root`: run by a user who is not root (nobody, when the tests run as root: `state_dir` must be its)."""
        argv = [python, str(zipapp), "--node", node]
        if sim is not None:
            argv += ["--sim", sim, "--gpus", "8", "--state-dir", str(state_dir or tmp_path / "state")]
        argv += extra
        agent = Agent(as_non_root(argv) if non_root else argv)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.close()
