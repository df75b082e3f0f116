"""One scheduling pass at a time per store: the controller's jobs loop and `sched tick` take turns.

Two passes at once would both see a GPU free and launch two gangs on it. An `fcntl.flock` on
`<state_dir>/scheduler.lock` (dropped by the kernel when its process dies, so a killed pass leaves no stale lock);
a pass waits for the other's end, at most `wait_s`, then says who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from factoryctl.errors import ActionFailed
from factoryctl.store.lock import make_private_dirs

LOCK_NAME = "scheduler.lock"


@contextlib.contextmanager
def scheduling_pass(
    state_dir: Path, wait_s: float = 30.0, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the store's scheduler lock for the block; ActionFailed when another pass keeps it for `wait_s`.

    `waiting(pid)` is told once when the lock is held by another process, before waiting (a person is not left
    looking at a silent command while a pass waits on a dead node).
    """
    make_private_dirs(state_dir)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ActionFailed(
                f"the scheduler lock {path} is not a regular file.", "move it aside; factoryctl creates it itself."
            )
        _take(fd, path, wait_s, waiting)
        _say_holder(fd)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _say_holder(fd: int) -> None:
    """Write this process's pid (and a newline) over the last holder's, and cut the file after it.

    Not by emptying the file first: ext4 flushes a file cut to 0 bytes when it is closed (`auto_da_alloc`, for
    programs that replace a file so), ~4 ms of every pass. A waiter that reads between the write and the cut sees
    the last holder's longer pid after the newline: it reads the first word (`_holder`).
    """
    said = f"{os.getpid()}\n".encode()
    os.pwrite(fd, said, 0)
    os.ftruncate(fd, len(said))


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote, or "unknown" before it wrote one."""
    words = os.pread(fd, 32, 0).decode(errors="replace").split()
    return words[0] if words else "unknown"


def _take(fd: int, path: Path, wait_s: float, waiting: Callable[[str], None] | None) -> None:
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            owner = _holder(fd)
            if waiting is not None and not told:
                waiting(owner)
                told = True
            if time.monotonic() >= deadline:
                raise ActionFailed(
                    f"another scheduling pass (pid {owner}) has held {path} for {wait_s:g} s.",
                    "the controller runs one every scheduler interval; wait for it, or check that process.",
                ) from None
            time.sleep(0.1)
