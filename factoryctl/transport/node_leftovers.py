"""What an interrupted factoryctl must end on the nodes before it exits: agents starting or open, internal commands.

sshd signals nothing when the connection of a command without a terminal closes, so a process that exits with an
agent still hanging (before its hello, or a `python:` that never answers) or an internal command still running
(nvidia-smi on a node without Python) left it running on the node for good: only `exec` interrupted what it ran.
Each such thing registers here how it is ended the way a failed session already is (a kill of its launch pid's or
known process group); the CLI's stop (`cli.signals.sigterm_interrupts`) ends what is still registered, in
parallel and within `END_WITHIN_S` all told, so a dead connection holds nothing up. A local agent registers too: it
leads its own session, so nothing else ends it, and one waiting for its node's limits lock set a limit after a
stopped `power set` had exited (transport/local.py).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator

#: How long ending every leftover may take, all of them at once: one kill's round trip on a connection that answers.
END_WITHIN_S = 2.0


class NodeLeftovers:
    """The things running on nodes that would outlive this process, each with how it is ended (`end_all`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._enders: dict[int, Callable[[], None]] = {}
        self._numbers = itertools.count()

    def add(self, end: Callable[[], None]) -> int:
        """Register `end` (best effort, bounded by its own timeouts); the number to `discard` it with."""
        with self._lock:
            number = next(self._numbers)
            self._enders[number] = end
        return number

    def discard(self, number: int) -> None:
        """The thing registered as `number` ended on its own (or was closed): nothing to end any more."""
        with self._lock:
            self._enders.pop(number, None)

    @contextlib.contextmanager
    def held(self, end: Callable[[], None]) -> Iterator[None]:
        """`end` is registered while the block runs."""
        number = self.add(end)
        try:
            yield
        finally:
            self.discard(number)

    def end_all(self, within: float = END_WITHIN_S) -> None:
        """End everything registered, each on its own daemon thread, waiting at most `within` seconds for all."""
        with self._lock:
            enders = list(self._enders.values())
            self._enders.clear()
        threads = [threading.Thread(target=_quietly, args=(end,), daemon=True, name="end-leftover") for end in enders]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + within
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))


def _quietly(end: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone: nothing more can be done from here
        end()


#: The process's leftovers: SSH agent sessions (transport/ssh_node.py) and internal commands (transport/ssh_commands.py).
NODE_LEFTOVERS = NodeLeftovers()
