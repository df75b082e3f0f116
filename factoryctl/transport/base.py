"""The port every transport implements, so collectors, commands and the controller do not care how a node is reached.

`local` runs the agent as a subprocess of this machine; `ssh` runs it over one persistent paramiko connection.
Both hand the agent's stdin/stdout to the same `AgentSession`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from factoryctl.errors import NodeError
from factoryctl.transport.session import AgentSession
from factoryctl.transport.stdin_stream import Stdin

#: Called with (1 for stdout or 2 for stderr, bytes) as a command's output arrives, on the transport's thread.
OutputSink = Callable[[int, bytes], None]
#: What a command's stdout, and its stderr, keep at most per node (more is read, counted and dropped).
MAX_OUTPUT_BYTES = 256 << 20
#: What all the commands of one exec keep at most together (`exec_output_budget`: less on a small machine).
MAX_TOTAL_OUTPUT_BYTES = 1 << 30
#: The share of this machine's memory that one exec's kept output may take at most (printing it needs as much again).
_MEMORY_SHARE = 8


@dataclass(frozen=True)
class CommandResult:
    """What one remote (or local) command produced.

    `held_open`: the command exited, but a process it started still held its output open, so that output was read
    for a moment only and the process left running (transport/held_open.py): what it printed later is not here.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    held_open: bool = False


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


class OutputBudget:
    """Bytes of output that the commands of one exec may still keep, together: first come, first served.

    Each stream is capped on its own (MAX_OUTPUT_BYTES), but 64 nodes at once times two streams of 256 MiB could
    fill the operator's machine: past the budget, what every stream reads is dropped and counted, as past its own cap.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self._left = total
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` bytes; returns how many were granted (0 once the budget is spent)."""
        with self._lock:
            granted = min(wanted, self._left)
            self._left -= granted
            return granted


def exec_output_budget() -> OutputBudget:
    """The budget of one exec's kept output: MAX_TOTAL_OUTPUT_BYTES, or an eighth of this machine's memory if less."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # not a POSIX system that says
        memory = 0
    share = memory // _MEMORY_SHARE if memory > 0 else MAX_TOTAL_OUTPUT_BYTES
    return OutputBudget(min(MAX_TOTAL_OUTPUT_BYTES, share))


class KeptOutput:
    """The output one command keeps: the streams its transport creates while `collecting`, drawing on `budget`.

    Transports create their CappedOutputs themselves; those created on this thread inside `collecting` share the
    budget and are listed here, so another thread can read what a command that is still running printed so far.
    """

    def __init__(self, budget: OutputBudget | None = None) -> None:
        self.budget = budget
        self.streams: list[CappedOutput] = []

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """CappedOutputs created on this thread until the block ends are this command's (see the class)."""
        previous = getattr(_COLLECTING, "kept", None)
        _COLLECTING.kept = self
        try:
            yield
        finally:
            _COLLECTING.kept = previous

    def so_far(self) -> tuple[bytes, bytes]:
        """(stdout, stderr) kept so far: the command's first stream of each (later ones are the transport's own)."""
        first: dict[int, CappedOutput] = {}
        for stream in list(self.streams):
            first.setdefault(stream.number, stream)
        out, err = (first[number].snapshot() if number in first else b"" for number in (1, 2))
        return out, err


#: The KeptOutput that this thread's new CappedOutputs join (`KeptOutput.collecting`).
_COLLECTING = threading.local()


class CappedOutput:
    """One output stream, kept up to `limit` bytes; the rest is read (so the command never stalls) and counted.

    Every chunk, kept or not, also goes to `sink` (stream `number`) as it arrives: a streamed `--lines` sees it all.
    Created inside `KeptOutput.collecting`, it also keeps no more than that budget grants (`over_budget`: dropped).
    """

    def __init__(self, limit: int = MAX_OUTPUT_BYTES, number: int = 1, sink: OutputSink | None = None) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.over_budget = 0
        self.limit = limit
        self.number = number
        self.sink = sink
        #: The process group of the command writing this stream, once known: how to stop one left running.
        self.group: int | None = None
        #: Left unread once its command exited: a process the command started holds it open (held_open.py).
        self.held_open = False
        owner: KeptOutput | None = getattr(_COLLECTING, "kept", None)
        self.budget = None if owner is None else owner.budget
        if owner is not None:
            owner.streams.append(self)

    def add(self, data: bytes) -> None:
        """Pass a chunk on to the sink; keep what still fits (in the stream's limit and the budget)."""
        if self.sink is not None and data:
            self.sink(self.number, data)
        fits = min(len(data), max(0, self.limit - self.size))
        granted = fits if self.budget is None or not fits else self.budget.take(fits)
        if granted:
            self.parts.append(data if granted == len(data) else data[:granted])
            self.size += granted
        self.dropped += len(data) - fits
        self.over_budget += fits - granted

    def snapshot(self) -> bytes:
        """What was kept so far; safe while another thread still adds."""
        return b"".join(list(self.parts))

    def value(self, note: bytes = b"") -> bytes:
        """What was kept, then `note`, once the stream was read to its end.

        Joined once: the parts are replaced by the joined bytes, so no second copy of the output stays alive.
        """
        joined = b"".join([*self.parts, note] if note else self.parts)
        self.parts = [joined] if joined else []
        return joined


def kept_stderr(out: CappedOutput, err: CappedOutput) -> bytes:
    """The kept stderr, plus a line saying how much of either stream was dropped past a limit, if any was."""
    notes = []
    if out.dropped or err.dropped:
        notes.append(f"{out.dropped + err.dropped} bytes past the {out.limit} byte limit per stream were dropped")
    budget = out.budget or err.budget
    if budget is not None and (out.over_budget or err.over_budget):
        dropped = out.over_budget + err.over_budget
        notes.append(f"{dropped} bytes past the {budget.total} byte limit for all nodes together were dropped")
    return err.value("".join(f"factoryctl: output truncated: {note}\n" for note in notes).encode())


def command_result(status: int, out: CappedOutput, err: CappedOutput) -> CommandResult:
    """The result of a command that exited with `status`: its kept output, and whether a stream was left held open."""
    return CommandResult(status, out.value(), kept_stderr(out, err), out.held_open or err.held_open)


def cut_short(cause: NodeError, out: CappedOutput, err: CappedOutput) -> CommandCut:
    """`cause` (a timeout, a lost connection) carrying the output that arrived before it."""
    return CommandCut(cause, out.value(), kept_stderr(out, err))
