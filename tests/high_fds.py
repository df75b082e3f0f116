"""Fill the low descriptor numbers so that new ones are numbered past FD_SETSIZE (1024), as in a large fleet."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

PAST_FD_SETSIZE = 1100


@contextlib.contextmanager
def descriptors_past_fd_setsize() -> Iterator[None]:
    """Hold every descriptor below PAST_FD_SETSIZE (raising the soft limit for it when needed), then give them back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < PAST_FD_SETSIZE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, PAST_FD_SETSIZE + 1000), hard))
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= PAST_FD_SETSIZE:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
