"""Commands that exited while a process they started still held their output open (`nohup job &` unredirected).

The command is over: its exit status has come. What it started in the background (`nohup sleep 600 &`, a daemon
that keeps stderr) holds the output pipe open, and waiting for that pipe's end waited until the timeout, which then
reported a command that had exited 0 as timed out (124) and killed the very job `nohup ... &` was meant to leave.
Both transports now read on for a moment (`read_for_grace`), then stop reading and report the command's own exit
status with the output read so far, leaving that process running. They say so in the command's own result
(`CommandResult.held_open`, transport/base.py), so that exec says why its later output is not shown
(`HELD_OPEN_NOTE`, once per node set); nothing is kept for the process, which would outlive the command (the
dashboard's transports run for days). Ctrl-C (the transport's `interrupt`) ends the grace at once: exec then
exits 130 without waiting it out.

A command still running at its timeout is killed as before: only an exit status that has come ends the wait early.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: How long output is still read once the command has exited but something it started holds the output open.
HELD_GRACE_S = 2.0
#: How often the grace looks again whether it was interrupted (Ctrl-C must not wait it out).
GRACE_POLL_S = 0.1

#: What exec says, after the node set, of the nodes whose result is `held_open`.
HELD_OPEN_NOTE = (
    "a process the command started still holds its output open; its later output is not shown "
    "(redirect it: `>/dev/null 2>&1`)"
)


def grace_end(deadline: float | None) -> float:
    """When to stop reading the output of a command that has exited: HELD_GRACE_S from now, never past `deadline`."""
    end = time.monotonic() + HELD_GRACE_S
    return end if deadline is None else min(end, deadline)


def read_for_grace(
    read_until: Callable[[float], bool], deadline: float | None, interrupted: Callable[[], bool]
) -> bool:
    """Read an exited command's output until it ends (True), or for the grace (`grace_end`) only (False).

    `read_until(t)` reads until the output ended (True) or the time `t` came (False). It is given GRACE_POLL_S at a
    time, so that `interrupted()` (Ctrl-C came) ends the grace within that, as it ends the wait of a running command.
    """
    end = grace_end(deadline)
    while not read_until(min(end, time.monotonic() + GRACE_POLL_S)):
        if interrupted() or time.monotonic() >= end:
            return False
    return True
