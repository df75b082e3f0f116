"""Watch `factoryctl exec --lines` in a real process: when each line arrives, not only what the output ends up as."""

from __future__ import annotations

import os
import select
import subprocess
import time

from process_groups import start


class StreamedExec:
    """`factoryctl ARGS` started with its stdout on a pipe, read line by line as the lines come."""

    def __init__(self, *args: str, stdin: int = subprocess.DEVNULL, ignore_sigint: bool = False) -> None:
        """`ignore_sigint`: started with SIGINT ignored, as `sh` starts a script's background jobs (`cmd &`)."""
        self.proc = start(*args, stdin=stdin, ignore_sigint=ignore_sigint)
        self._pending = b""

    def lines(self, count: int, within: float = 30.0) -> list[str]:
        """The next `count` stdout lines; AssertionError if they did not all come within `within` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + within
        while self._pending.count(b"\n") < count:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            chunk = os.read(fd, 65536) if ready else b""
            assert chunk, f"only {self._pending!r} within {within:g} s (exit status {self.proc.poll()})"
            self._pending += chunk
        *taken, self._pending = self._pending.split(b"\n", count)
        return [line.decode() for line in taken]

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the end: (exit status, stderr)."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode()
