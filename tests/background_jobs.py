"""The background jobs exec's held-open tests leave on purpose (`nohup job &`): is one alive, and kill them after.

Shared by the held-open tests over both transports (the CLI's, the transports' own), which each had a copy.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_listed(path: Path) -> None:
    """SIGKILL every pid listed in the file `path` (none if it is missing)."""
    for pid in path.read_text().split() if path.exists() else []:
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    """Where the commands note their pids; the background jobs left (`marks/jobs`) are killed after the test."""
    path = tmp_path / "marks"
    path.mkdir()
    yield path
    kill_listed(path / "jobs")
