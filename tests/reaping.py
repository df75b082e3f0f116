"""Ending a test's child process whatever happens: a failed assertion must not leave `factoryctl` running behind it.

The interrupt tests start the real console script, signal it and wait for its end; when a step fails first, the
process is still running, so `reaped` kills and reaps it on the way out (once, here, rather than in every test).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def reaped(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """Run the body with `proc`; on leaving, a `proc` still running is killed and waited for (its pipes drained)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
