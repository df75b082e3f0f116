"""A flag and wake-up that a signal handler can give: the one thing factoryctl's handlers do besides raising.

A handler runs in the main thread between two of its bytecodes, and another signal's handler can run between two
bytecodes of the first. One that takes a lock the code it interrupted holds (a `threading.Event`'s `set` takes the
Event's Condition lock) blocks for ever: the controller's loop hung inside `Event.wait` (session 18), `exec` and every
command's `sigterm_interrupts` block when a third SIGTERM landed inside the second one's `Event.set` (session 19).
`put` of a `queue.SimpleQueue` is reentrant, taking no lock a thread it interrupts may hold, and a bool assigned is
no more than one bytecode. Standard library only: the controller, the CLI and the fan-out share it.
"""

from __future__ import annotations

import contextlib
import queue


class Wake:
    """Given by a signal handler (or any thread): `is_set` from then on, and a `wait` under way returns at once."""

    def __init__(self) -> None:
        self._wakes: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._given = False

    def set(self) -> None:
        """Give it: from a signal handler or any thread, never blocking (see the module doc)."""
        self._given = True
        self._wakes.put(None)

    def is_set(self) -> bool:
        """Whether it was ever given (a stop asked for); `wait` does not clear it."""
        return self._given

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for it to be given; whether it was. Those given before it returns are taken too.

        A burst of them wakes one `wait`, not one each; `is_set` stays true.
        """
        try:
            self._wakes.get(timeout=timeout)
        except queue.Empty:
            return False
        with contextlib.suppress(queue.Empty):
            for _ in range(self._wakes.qsize()):  # those there now: a storm of signals cannot keep it here
                self._wakes.get_nowait()
        return True
