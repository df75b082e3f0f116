"""A real interactive shell on a pseudo-terminal, for completion tests that must go through the shell's own parsing.

Completion scripts are shell code: what a shell splits into words, and what it replaces on the line with a candidate,
only a real shell can show. The tests type into it and read the terminal, with a bound on every wait.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

#: Longest wait for the shell to echo something (a loaded machine starts Python slowly); a bound, not an assertion.
ECHO_TIMEOUT_S = 90.0


class PtyShell:
    """An interactive shell (`argv`) on a pty, with `env` added to ours."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **env}, start_new_session=True
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, wanted: bytes) -> bool:
        """Read the terminal until `wanted` shows (True), or ECHO_TIMEOUT_S pass (False)."""
        deadline = time.monotonic() + ECHO_TIMEOUT_S
        while wanted not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        return wanted in self.seen

    def type(self, keys: str) -> None:
        """Type `keys` (control characters included) after forgetting what the terminal showed so far."""
        self.seen = b""
        os.write(self.master, keys.encode())

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.master)


def factoryctl_on_path(bin_dir: Path) -> str:
    """A `factoryctl` in `bin_dir` running this checkout; returns a PATH with it first."""
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "factoryctl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m factoryctl "$@"\n')
    wrapper.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
