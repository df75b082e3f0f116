"""Wait for readable descriptors with poll(2), never select(2): a large fleet has descriptors past FD_SETSIZE.

`select.select` refuses any descriptor numbered 1024 or more (`ValueError: filedescriptor out of range`). A process
talking to a few hundred nodes at once passes that number (a socket per node, a pipe per channel waited on), and
the open-file limit is raised for exactly that (transport/host_limits.py); poll has no such ceiling.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Protocol


class HasFileno(Protocol):
    """A socket, a paramiko Channel, a file: anything poll can watch."""

    def fileno(self) -> int:
        """The descriptor to watch."""
        ...


Watched = int | HasFileno


def readable(watched: Sequence[Watched], timeout_s: float) -> list[Watched]:
    """Those of `watched` ready to read (or at EOF, or in error) within `timeout_s`; [] when the time passed."""
    poller = select.poll()
    by_fd: dict[int, Watched] = {}
    for item in watched:
        fd = item if isinstance(item, int) else item.fileno()
        by_fd[fd] = item
        poller.register(fd, select.POLLIN | select.POLLPRI)
    ready = poller.poll(max(0.0, timeout_s) * 1000)
    return [by_fd[fd] for fd, _ in ready if fd in by_fd]


def writable(fd: int, timeout_s: float) -> bool:
    """Whether `fd` has room to write (or is in error, so the write will say why) within `timeout_s`."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(max(0.0, timeout_s) * 1000))
