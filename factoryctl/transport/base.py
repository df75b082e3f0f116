"""The port every transport implements, so collectors, commands and the controller do not care how a node is reached.

`local` runs the agent as a subprocess of this machine; `ssh` runs it over one persistent paramiko connection.
Both hand the agent's stdin/stdout to the same `AgentSession`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from factoryctl.errors import NodeError
from factoryctl.transport.session import AgentSession
from factoryctl.transport.stdin_stream import Stdin

#: Called with (1 for stdout or 2 for stderr, bytes) as a command's output arrives, on the transport's thread.
OutputSink = Callable[[int, bytes], None]
#: What a command's stdout, and its stderr, keep at most per node (more is read, counted and dropped).
MAX_OUTPUT_BYTES = 256 << 20


@dataclass(frozen=True)
class CommandResult:
    """What one remote (or local) command produced."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class CommandCut(NodeError):
    """A command that timed out or lost its connection, with the output that had arrived (like pdsh and clush).

    A NodeError like any other (kind `timeout`, `refused`, ...), so exit codes and `errors` stay as they were.
    """

    def __init__(self, cause: NodeError, stdout: bytes, stderr: bytes) -> None:
        super().__init__(cause.node, cause.kind, cause.message, cause.hint)
        self.stdout = stdout
        self.stderr = stderr


class NodeTransport(Protocol):
    """A way to reach one node: run a command, start the agent, close."""

    def run(
        self, argv: list[str], timeout: float, stdin: Stdin = None, on_output: OutputSink | None = None
    ) -> CommandResult:
        """Run argv on the node (quoted with `quoting.shell_join` where a shell is involved) and wait for it.

        `stdin` is the command's standard input, closed (EOF) after it: bytes, or a `Feed` streamed while the command
        runs (its end never waits for more input); None gives it none (EOF at once). `on_output` sees every chunk of
        output as it arrives (also past the kept limit). A timeout or lost connection raises `CommandCut`, which
        carries what arrived before.
        """
        ...

    def interrupt(self) -> None:
        """Ctrl-C: stop the commands `run` is running now (SIGINT, then SIGHUP), from another thread."""
        ...

    def start_agent(self, timeout: float) -> AgentSession:
        """Start (shipping first when needed) the node agent and return its session, hello received."""
        ...

    def close(self) -> None:
        """Release connections and processes."""
        ...


class CappedOutput:
    """One output stream, kept up to `limit` bytes; the rest is read (so the command never stalls) and counted.

    Every chunk, kept or not, also goes to `sink` (stream `number`) as it arrives: a streamed `--lines` sees it all.
    """

    def __init__(self, limit: int = MAX_OUTPUT_BYTES, number: int = 1, sink: OutputSink | None = None) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.limit = limit
        self.number = number
        self.sink = sink

    def add(self, data: bytes) -> None:
        """Pass a chunk on to the sink; keep what still fits."""
        if self.sink is not None and data:
            self.sink(self.number, data)
        room = max(0, self.limit - self.size)
        if room:
            self.parts.append(data[:room])
            self.size += min(len(data), room)
        self.dropped += max(0, len(data) - room)

    def value(self) -> bytes:
        """What was kept."""
        return b"".join(self.parts)


def kept_stderr(out: CappedOutput, err: CappedOutput) -> bytes:
    """The kept stderr, plus a line saying how much of either stream was dropped past the limit, if any was."""
    if not (out.dropped or err.dropped):
        return err.value()
    note = f"{out.dropped + err.dropped} bytes past the {out.limit} byte limit per stream were dropped"
    return err.value() + f"factoryctl: output truncated: {note}\n".encode()


def cut_short(cause: NodeError, out: CappedOutput, err: CappedOutput) -> CommandCut:
    """`cause` (a timeout, a lost connection) carrying the output that arrived before it."""
    return CommandCut(cause, out.value(), kept_stderr(out, err))
