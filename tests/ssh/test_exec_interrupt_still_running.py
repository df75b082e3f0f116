"""A command that ignores Ctrl-C is reported as still running, on SSH nodes as on local ones (docs/ssh.md).

The SSH transport used to close an interrupted command's channel, so its run returned at once, cut short, and exec
said `command interrupted before it finished` while the command (`trap "" INT HUP`) ran on. Now the run goes on
until the command ends; one still running when exec stops waiting says so, and names its process group and how to
stop it, as a timeout does (a local node's did not). Each test runs on local and SSH nodes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture
from process_groups import group_of, running_in_group, start
from reaping import reaped
from waiting import wait_for

from factoryctl.errors import ExitCode

IGNORES_INTERRUPTS = 'trap "" INT HUP; echo started; echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 60'
ENDS_ON_INTERRUPT = 'echo started; echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 60'


def interrupted(nodes: Fleet, pidfile, script: str) -> tuple[int, str, int]:
    """exec's exit status and stderr after a Ctrl-C once `script` runs on n01, and the command's process group."""
    argv = ["--config", nodes.config, "exec", "n01", "-t", "60", "--", "sh", "-c", script, "x", str(pidfile)]
    with reaped(start(*argv, stdin=subprocess.DEVNULL)) as proc:
        wait_for(pidfile.exists, what="the command's start")
        group = group_of(int(pidfile.read_text()))  # sshd runs on this machine: the "remote" command's group is here
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode(), group


def test_a_command_that_ignores_the_interrupt_is_said_to_still_run(fleet: Fleet, tmp_path):  # noqa: F811
    pidfile = tmp_path / "pid"
    try:
        code, err, group = interrupted(fleet, pidfile, IGNORES_INTERRUPTS)
        assert running_in_group(group)  # as said: it ignored both signals
    finally:
        with contextlib.suppress(OSError):
            os.killpg(group_of(int(pidfile.read_text())), signal.SIGKILL)
    assert code == ExitCode.INTERRUPTED, err
    assert "before it finished" not in err
    still = "n01: command interrupted, but still running when exec stopped waiting for it"
    assert f"factoryctl: {still} (process group {group})\n" in err  # a local one's went unsaid
    assert f"hint: stop it with `factoryctl exec n01 -- kill -KILL -- -{group}`.\n" in err


def test_a_command_that_ends_on_the_interrupt_is_said_to_be_stopped(fleet: Fleet, tmp_path):  # noqa: F811
    code, err, group = interrupted(fleet, tmp_path / "pid", ENDS_ON_INTERRUPT)
    assert code == ExitCode.INTERRUPTED, err
    assert "factoryctl: n01: command interrupted before it finished\n" in err
    wait_for(lambda: not running_in_group(group), timeout=10, what="the command's end")
