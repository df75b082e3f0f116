"""The `local` transport: this machine's own node, with the agent as a subprocess speaking the same protocol.

Used by the demo, by workstations that watch their own GPUs, and by tests of everything above the wire.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
from pathlib import Path

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.base import CommandResult
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.session import AgentSession


class LocalTransport:
    """Runs commands and the agent on this machine."""

    def __init__(self, node: NodeSpec, factory: str, state_dir: Path) -> None:
        self.node = node
        self.factory = factory
        self.state_dir = state_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def run(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        """Run argv directly (no shell) and wait at most `timeout` seconds; `stdin` is its input (else none).

        The command never inherits this process's stdin (a terminal, or a pipe other nodes' input comes from).
        """
        try:
            if stdin is None:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
            else:
                done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise NodeError(
                self.node.name, "timeout", f"{self.node.name}: command timed out after {timeout:g} s."
            ) from exc
        except OSError as exc:
            return CommandResult(127, b"", f"{argv[0]}: {exc.strerror}\n".encode())
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def start_agent(self, timeout: float) -> AgentSession:
        """Start the agent zipapp with this interpreter and wait for its hello."""
        from factoryctl.transport.bundle import agent_zipapp

        python = sys.executable if self.node.python == "python3" else self.node.python
        argv = agent_argv(self.node, self.factory, python, agent_zipapp(), str(self.state_dir / "sim"))
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise NodeError(
                self.node.name, "agent", f"{self.node.name}: cannot start {python}: {exc.strerror}.", None
            ) from exc
        self._procs.append(proc)
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        tail = _StderrTail(proc.stderr)
        session = AgentSession(
            self.node.name, proc.stdin, proc.stdout, on_close=lambda: _reap(proc), stderr_tail=tail.text
        )
        try:
            session.wait_hello(timeout)
        except NodeError:
            _reap(proc)
            raise
        return session

    def close(self) -> None:
        """Stop every process this transport started."""
        for proc in self._procs:
            _reap(proc)
        self._procs.clear()


class _StderrTail:
    """Drains a child's stderr on a thread (so it never blocks) and keeps its last lines for error messages."""

    def __init__(self, stream: object) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            self._lines.append(raw.decode("utf-8", "replace"))

    def text(self) -> str:
        return "".join(self._lines)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
