"""The scheduler lock's file names its holder: written over the last holder's pid, never emptied first.

Emptying the file cost ~4 ms of every pass (ext4 flushes a file cut to 0 bytes at its close); now the pid and a
newline are written over the old text and the file is cut after them. Real files and real `flock`s: a waiter that
reads between the write and the cut finds the holder's pid, a newline, then the rest of a longer old pid.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from factoryctl.errors import ActionFailed
from factoryctl.jobs.pass_lock import LOCK_NAME, scheduling_pass

#: A pid longer than any this process can have (Linux's pid_max is at most 2**22, 7 digits).
LONGER = "123456789012"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory whose lock file a holder with a longer pid left behind."""
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    (path / LOCK_NAME).write_text(f"{LONGER}\n")
    return path


def test_a_pass_leaves_its_own_pid_alone_in_the_lock_file(state_dir: Path) -> None:
    with scheduling_pass(state_dir):
        assert (state_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert (state_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_waiter_is_told_the_holder_over_a_longer_old_pid(state_dir: Path) -> None:
    held, release = threading.Event(), threading.Event()

    def a_pass() -> None:
        with scheduling_pass(state_dir):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=a_pass)
    holder.start()
    try:
        assert held.wait(10)
        told: list[str] = []
        with pytest.raises(ActionFailed, match=f"pid {os.getpid()}\\)"), scheduling_pass(state_dir, 0.2, told.append):
            pass
        assert told == [str(os.getpid())]
    finally:
        release.set()
        holder.join(10)


def test_a_waiter_reading_between_the_write_and_the_cut_is_told_the_new_holder(state_dir: Path) -> None:
    """The holder's pid is written, the old longer one's tail not yet cut off: the waiter names the holder."""
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"4242\n", 0)  # what `scheduling_pass` writes before it cuts the file
        assert (state_dir / LOCK_NAME).read_text() == f"4242\n{LONGER[5:]}\n"
        told: list[str] = []
        with pytest.raises(ActionFailed, match=r"pid 4242\)"), scheduling_pass(state_dir, 0.2, told.append):
            pass
        assert told == ["4242"]
    finally:
        os.close(fd)
