"""A dashboard whose terminal is gone always ends, its node agents released, with the closed terminal's status (129).

`tmux kill-session` under a dashboard once left it hung for good with its agents alive, deaf to SIGTERM: Textual's
writer thread died writing to the closed terminal, and the app's own writes as it quit then blocked on the writer's
full queue. Here the dashboard runs on a real pseudo-terminal (its controlling terminal, as in tmux), whose master
is closed: the kernel hangs it up (SIGHUP) and every write fails. Textual's queue is cut from 30 entries to 1 in the
child, so the race seen once (30 writes after the writer died) happens every time.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FACTORY = """\
name: lab
nodes:
  gpu[01-02]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}
controller:
  interval_s: 0.5
"""

#: The dashboard, with Textual's writer queue one entry long (the real 30 only takes longer to fill) and its shutdown
#: watchdog's grace cut from 5 s to 1 s (the app hangs every time here: the watchdog ends it, only sooner).
DASH = (
    "import functools, sys\n"
    "import textual.drivers._writer_thread as writer\n"
    "import factoryctl.tui.shutdown_watch as watch\n"
    "writer.MAX_QUEUED_WRITES = 1\n"
    "watch.ShutdownWatchdog = functools.partial(watch.ShutdownWatchdog, grace_s=1.0)\n"
    "from factoryctl.cli.app import main\n"
    "sys.argv = ['factoryctl', '-c', sys.argv[1], 'dash']\n"
    "main()\n"
)


def _children(pid: int) -> set[int]:
    """The processes `pid` started (its node agents), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(n) for n in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _read_until(fd: int, pid: int, deadline: float) -> None:
    """Drain the terminal until both nodes' agents run under the dashboard."""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            os.read(fd, 65536)
        if len(_children(pid)) >= 2:
            return
    raise AssertionError("the dashboard never started its two node agents")


#: In the header of every frame drawn once both nodes answer (`lab · 2 nodes │ 2 up`).
BOTH_UP = b"2 up"


def _read_frames(fd: int, frames: int, deadline: float) -> None:
    """Drain the terminal until `frames` frames showing both nodes up are drawn: the dashboard is refreshing."""
    drawn = b""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            drawn += os.read(fd, 65536)
        if drawn.count(BOTH_UP) >= frames:
            return
    raise AssertionError(f"the dashboard drew {drawn.count(BOTH_UP)} of {frames} frames with both nodes up")


def test_a_dashboard_whose_terminal_closed_ends_with_129_and_its_agents_gone(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-c", DASH, str(config)])
    agents: set[int] = set()
    try:
        _read_until(fd, pid, time.monotonic() + 60)
        agents = _children(pid)
        _read_frames(fd, 3, time.monotonic() + 30)  # a few refreshes drawn, with the nodes' data
        os.close(fd)  # the terminal window is closed: SIGHUP, and every write fails from now on
        fd = -1
        deadline = time.monotonic() + 20
        done, status = os.waitpid(pid, os.WNOHANG)
        while not done and time.monotonic() < deadline:
            time.sleep(0.1)
            done, status = os.waitpid(pid, os.WNOHANG)
        assert done, "the dashboard still ran 20 s after its terminal closed"
        assert os.waitstatus_to_exitcode(status) == 129
        gone_by = time.monotonic() + 10
        while any(_alive(a) for a in agents) and time.monotonic() < gone_by:
            time.sleep(0.1)
        assert not any(_alive(a) for a in agents), "node agents outlived the dashboard"
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(ChildProcessError):  # reaped above unless it hung
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        for agent in agents:
            if _alive(agent):
                os.kill(agent, signal.SIGKILL)
