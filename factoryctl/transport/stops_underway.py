"""The nodes whose interrupt is still on its way, so that exec's wait after a second Ctrl-C does not end before it lands.

A root login's command is interrupted over another channel (sshd delivers no signal to it: transport/ssh_commands.py), which
takes a login shell's round trip; a command still starting when the interrupt came is refused or signalled once it
starts. A second Ctrl-C 10 ms after the first ended exec's wait at once, before those answers, and every such node was
said to be "still running" when 2 s later none was. While a node is held here its interrupt is under way: exec waits
for it (within its grace) even after a second signal. A hold ends when the transport finds the command still running
once the interrupt was answered (`release`: it ignores it, and is reported so), or when the node's run is over
(`forget`, by exec once it has the result coming): never when the command merely ended, which would leave a moment in
which neither its hold nor its result is there.
"""

from __future__ import annotations

import threading

#: How long, once its interrupt was answered, a command is given to end before it is taken for one that ignores it:
#: sshd reports the end of a command the signal killed with the kill's own answer, or just after it.
END_SLACK_S = 0.25


class StopsUnderway:
    """The names of the nodes whose interrupt has not been answered yet (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def hold(self, node: str) -> None:
        """`node`'s interrupt is on its way (a delivery started, or its command is still starting)."""
        with self._lock:
            self._held.add(node)

    def release(self, node: str) -> None:
        """`node`'s interrupt was answered and its command still runs: nothing more to wait for."""
        with self._lock:
            self._held.discard(node)

    forget = release  # the node's run is over: its result is coming (see the module doc)

    def held(self, node: str) -> bool:
        """Whether `node`'s interrupt is still on its way."""
        with self._lock:
            return node in self._held


#: The process's interrupts under way (exec is the only caller that interrupts commands).
STOPS_UNDERWAY = StopsUnderway()
