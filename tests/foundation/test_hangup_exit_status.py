"""Closing the terminal a command runs in ends it with 129 (`hung up`), though nothing can be said there any more.

A reviewer ran `exec`, `gpus` and `nodes check` in a pseudo-terminal and closed it mid-run: exit 1 every time, where
docs/cli.md says 129 (and 129 it was with stderr in a file). The kernel sends SIGHUP as the terminal closes, and
every write to it fails from then on with EIO: the stop's `hung up`, or exec's per-node errors before it, failed,
and the error boundary took that for output it could not write (exit 1). A real pseudo-terminal here, closed the
way a terminal emulator's window closes: its master side.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest
from stop_children import one_node_factory


def _closed_once_said(argv: list[str], ready: bytes) -> int:
    """Run factoryctl `argv` on a new terminal, close the terminal once it printed `ready`; its exit status."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal, stdin, stdout and stderr
        try:
            os.execv(sys.executable, [sys.executable, "-m", "factoryctl", *argv])
        finally:
            os._exit(127)
    said = b""
    deadline = time.monotonic() + 60
    try:
        while ready not in said and time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                said += os.read(terminal, 65536)
    except OSError:  # EIO: the child ended and the terminal with it
        pass
    finally:
        os.close(terminal)  # the window closed: SIGHUP to the command, EIO on its writes
    assert ready in said, said.decode(errors="replace")
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the command went on after its terminal closed")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return one_node_factory(tmp_path)


def test_exec_whose_terminal_closes_exits_129(config: Path) -> None:
    """exec stops its command, and its per-node error and `hung up` cannot be written: still 129."""
    argv = ["--config", str(config), "exec", "n1", "--lines", "--", "sh", "-c", "echo ready-to-close; exec sleep 30"]
    assert _closed_once_said(argv, b"ready-to-close") == 129


def test_a_listing_whose_terminal_closes_exits_129(config: Path) -> None:
    """`gpus --watch` is stopped by SIGHUP in its wait, and `hung up` cannot be written: still 129."""
    assert _closed_once_said(["--config", str(config), "gpus", "--watch", "--interval", "30"], b"n1") == 129
