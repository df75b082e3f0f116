"""Commands that exited while a process they started still held their output open (`nohup job &` unredirected).

The command is over: its exit status has come. What it started in the background (`nohup sleep 600 &`, a daemon
that keeps stderr) holds the output pipe open, and waiting for that pipe's end waited until the timeout, which then
reported a command that had exited 0 as timed out (124) and killed the very job `nohup ... &` was meant to leave.
Both transports now read on for a moment (`grace_end`), then stop reading and report the command's own exit
status with the output read so far, leaving that process running. They mark the node here, so that exec says so
once per node set (`HELD_OPEN_NOTE`): its later output is not shown.

A command still running at its timeout is killed as before: only an exit status that has come ends the wait early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

#: How long output is still read once the command has exited but something it started holds the output open.
HELD_GRACE_S = 2.0

#: What exec says, after the node set, of the nodes marked here.
HELD_OPEN_NOTE = (
    "a process the command started still holds its output open; its later output is not shown "
    "(redirect it: `>/dev/null 2>&1`)"
)


def grace_end(deadline: float | None) -> float:
    """When to stop reading the output of a command that has exited: HELD_GRACE_S from now, never past `deadline`."""
    end = time.monotonic() + HELD_GRACE_S
    return end if deadline is None else min(end, deadline)


class HeldOpenNodes:
    """The nodes whose last command's output was left held open (thread-safe: the fan-out's threads mark them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: set[str] = set()

    def mark(self, node: str) -> None:
        """`node`'s command exited with its output still held open: its later output was not read."""
        with self._lock:
            self._nodes.add(node)

    def take(self, nodes: Iterable[str]) -> list[str]:
        """Those of `nodes` that were marked, in their order; they are unmarked (said once)."""
        with self._lock:
            taken = [node for node in nodes if node in self._nodes]
            self._nodes.difference_update(taken)
        return taken


#: The nodes marked by every transport of this process; exec takes those it reports on (cli/exec_output.py).
HELD_OPEN = HeldOpenNodes()
