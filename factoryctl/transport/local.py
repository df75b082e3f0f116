"""The `local` transport: this machine's own node, with the agent as a subprocess speaking the same protocol.

Used by the demo, by workstations that watch their own GPUs, and by tests of everything above the wire.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.base import CommandResult
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.session import AgentSession
from factoryctl.transport.stdin_stream import CHUNK, Feed, Stdin, as_feed


class LocalTransport:
    """Runs commands and the agent on this machine."""

    def __init__(self, node: NodeSpec, factory: str, state_dir: Path) -> None:
        self.node = node
        self.factory = factory
        self.state_dir = state_dir
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    def run(self, argv: list[str], timeout: float, stdin: Stdin = None) -> CommandResult:
        """Run argv directly (no shell) and wait at most `timeout` seconds; `stdin` is its input (else none).

        The command never inherits this process's stdin (a terminal, or a pipe other nodes' input comes from). Input
        is written from a thread while the output is read, and the command's end is never held up by input still
        to come.
        """
        feed = as_feed(stdin)
        deadline = time.monotonic() + timeout
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # its own process group, as sshd gives a command: signalled as a whole
            )
        except OSError as exc:
            if feed is not None:
                feed.close()
            return CommandResult(127, b"", f"{argv[0]}: {exc.strerror}\n".encode())
        with self._lock:
            self._running.add(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = _Collect(proc.stdout), _Collect(proc.stderr)
        if feed is not None:
            threading.Thread(target=_pump, args=(feed, proc), daemon=True, name=f"stdin-{self.node.name}").start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise NodeError(
                self.node.name, "timeout", f"{self.node.name}: command timed out after {timeout:g} s."
            ) from exc
        finally:
            if feed is not None:
                feed.close()
            with self._lock:
                self._running.discard(proc)
        # output a grandchild still holds open is waited for until the deadline, then taken as it is
        return CommandResult(proc.returncode, out.value(deadline), err.value(deadline))

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT, then SIGHUP, to the commands running now (what a terminal sends, then its hang-up)."""
        with self._lock:
            running = list(self._running)
        for proc in running:
            for sig in (signal.SIGINT, signal.SIGHUP):
                _signal_group(proc, sig)

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


class _Collect:
    """Reads one output stream to its end on a thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._parts: list[bytes] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := stream.read(CHUNK):
                self._parts.append(chunk)

    def value(self, deadline: float) -> bytes:
        """All of it, once the stream ended (or what came by `deadline`)."""
        self._thread.join(max(0.1, deadline - time.monotonic()))
        return b"".join(self._parts)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the command's whole process group (it leads its own session); it may be gone already."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, sig)


def _pump(feed: Feed, proc: subprocess.Popen[bytes]) -> None:
    """Write the feed to the command's stdin (blocking writes: a slow reader slows the feed), then close it."""
    pipe = proc.stdin
    assert pipe is not None
    try:
        while proc.poll() is None:
            data = feed.peek(CHUNK)
            if data:
                feed.advance(pipe.write(data) or 0)
            elif feed.ended:
                break
            else:
                feed.wait(0.2)
    except (OSError, ValueError):  # the command closed its stdin or exited: it takes no more, which is fine
        pass
    finally:
        feed.close()
        with contextlib.suppress(OSError, ValueError):
            pipe.close()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
