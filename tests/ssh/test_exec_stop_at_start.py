"""Ctrl-C while exec's commands start, and a second Ctrl-C while they stop, over a real sshd (root: no signal requests).

A node counted as running (connected, admitted) whose command was not started yet got nothing from the interrupt (no
channel to signal yet), and its command started just after, for good: exec does not end its own commands on its way
out. Now an interrupted connection refuses a command not started yet ("not started"), and one whose `exec` request
was on its way hears the interrupt as soon as it started. The boundary is held with events (the connection's own
`channel` and `commands.start` wrapped), never by timing luck. A second Ctrl-C right after the first no longer says
"still running" of commands whose kill was still on its way over its own channel; those that do go on are said so in
one line for all, with one hint that finds them by their command line (their process groups differ).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV
from process_groups import group_of, running_in_group, start
from reaping import reaped
from waiting import wait_for

from factoryctl.cli.exec_output import find_command_hint
from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.fanout import NOT_STARTED_MESSAGE, RunningCommands
from factoryctl.transport.ssh import SshConnection, SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
#: Says it runs (its pid in $1), then waits: long enough that a command wrongly started is seen to have started.
SAYS_IT_RUNS = 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 20'


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    """Where the commands say they run; whatever still runs of them at the end is killed (by its group)."""
    path = tmp_path / "marks"
    path.mkdir()
    yield path
    for pidfile in path.iterdir():
        with contextlib.suppress(OSError, ValueError, AssertionError):
            os.killpg(group_of(int(pidfile.read_text())), signal.SIGKILL)


def _in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    """`work()` on a thread; the list gets its result or the exception it raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_an_interrupt_between_the_channel_and_the_exec_request_starts_nothing(connection: SshConnection, marks):
    pidfile = marks / "cmd"
    opened, go = threading.Event(), threading.Event()
    channel = connection.channel

    def held_channel(timeout: float | None = None) -> Any:  # the command's channel is open, its `exec` not sent
        chan = channel(timeout)
        opened.set()
        go.wait()
        return chan

    connection.channel = held_channel  # type: ignore[method-assign]
    thread, outcome = _in_thread(lambda: connection.run(["sh", "-c", SAYS_IT_RUNS, "x", str(pidfile)], timeout=60))
    assert opened.wait(30)
    connection.interrupt()
    go.set()
    thread.join()
    [error] = outcome
    assert isinstance(error, NodeError), error  # it ran `sleep 20` to its end: the interrupt had found no channel
    assert (error.kind, error.message) == ("interrupted", NOT_STARTED_MESSAGE)
    assert not pidfile.exists()


def test_a_command_whose_exec_request_was_on_its_way_hears_the_interrupt(connection: SshConnection, marks):
    pidfile = marks / "cmd"
    sent, go = threading.Event(), threading.Event()
    start_command = connection.commands.start

    def held_start(chan: Any, err: Any, send: Any) -> None:  # its `exec` request sent, not yet among the running
        def send_then_wait() -> None:
            send()
            sent.set()
            go.wait()

        start_command(chan, err, send_then_wait)

    connection.commands.start = held_start  # type: ignore[method-assign]
    thread, outcome = _in_thread(lambda: connection.run(["sh", "-c", SAYS_IT_RUNS, "x", str(pidfile)], timeout=60))
    assert sent.wait(30)
    connection.interrupt()
    go.set()
    thread.join()
    [result] = outcome
    assert not isinstance(result, Exception), result
    assert result.exit_code == 255  # ended by the signal (as OpenSSH's client says), not by `sleep 20` ending: 0


def test_a_node_admitted_then_interrupted_before_its_command_runs_nothing(ssh_node, marks):
    pidfile = marks / "cmd"
    live = RunningCommands()
    transport = live.admit("n1", SshTransport.open(ssh_node("n1"), "lab", OPTIONS))  # counted as running
    try:
        live.interrupt_all()  # Ctrl-C: nothing runs on it yet
        with pytest.raises(NodeError) as raised:
            transport.run(["sh", "-c", SAYS_IT_RUNS, "x", str(pidfile)], 60)
    finally:
        live.leave("n1", transport)
    assert (raised.value.kind, raised.value.message) == ("interrupted", NOT_STARTED_MESSAGE)
    assert not pidfile.exists()


@pytest.fixture
def factory(tmp_path, sshd, known_hosts) -> str:
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n[01-06]: {host: 127.0.0.1}\n")


def _interrupted(factory: str, marks: Path, script: str, signals: int) -> tuple[int, str, list[int]]:
    """exec's status and stderr after `signals` SIGINTs back to back once `script` runs on every node; their groups."""
    argv = ["--config", factory, "exec", "all", "-t", "60", "--", "sh", "-c", script, "x", f"{marks}/"]
    with reaped(start(*argv, stdin=subprocess.DEVNULL)) as proc:
        wait_for(lambda: len([p for p in marks.iterdir() if p.suffix != ".tmp"]) == 6, what="every node's command")
        groups = [group_of(int(p.read_text())) for p in marks.iterdir()]
        for number in range(signals):
            if number:
                time.sleep(0.01)  # a double Ctrl-C: the second once exec handles the first
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode(), groups


PER_NODE = 'f="$1$$"; echo $$ > "$f.tmp" && mv "$f.tmp" "$f"; exec sleep 20'


def test_a_double_ctrl_c_still_waits_for_the_kills_on_their_way(factory, marks):
    code, err, _ = _interrupted(factory, marks, PER_NODE, signals=2)
    assert code == ExitCode.INTERRUPTED, err
    assert "still running" not in err  # each of them, with its process group and a hint: ended a moment later
    assert "factoryctl: n[01-06] (6): command interrupted before it finished\n" in err


IGNORES = 'trap "" INT HUP; f="$1$$"; echo $$ > "$f.tmp" && mv "$f.tmp" "$f"; exec sleep 20'


def test_commands_still_running_are_one_line_with_one_hint(factory, marks, sshd):
    code, err, groups = _interrupted(factory, marks, IGNORES, signals=1)
    assert all(running_in_group(group) for group in groups)  # as said
    assert code == ExitCode.INTERRUPTED, err
    still = "factoryctl: n[01-06] (6): command interrupted, but still running when exec stopped waiting for it\n"
    assert still in err  # not six lines, each with its own process group
    [hint] = [line for line in err.splitlines() if "pgrep" in line]
    login = shlex.quote(sshd.user)  # the nodes' login user: only its own processes are looked at, and stopped
    assert hint.startswith(f"hint: look for it with `factoryctl exec 'n[01-06]' -- pgrep -U {login} -af ")
    assert "pkill" not in hint  # the script and its path are past the 120 characters matched: the look-up only
    assert "process group" not in err


def test_the_hint_finds_the_command_by_its_command_line(tmp_path):
    argv = ["sleep", "19.5"]
    proc = subprocess.Popen(argv)
    try:
        hint = find_command_hint("n1", argv, getpass.getuser())
        [look] = re.findall(r"`factoryctl exec 'n1' -- (pgrep [^`]+)`", hint)
        found = subprocess.run(shlex.split(look), capture_output=True, text=True, check=True).stdout
        assert found.split() == [str(proc.pid), *argv]  # it alone: not the shell that would have started it
    finally:
        proc.kill()
        proc.wait()


#: Says it runs, prints a line once told to (`go`: its reader has gone by then), then waits; SIGINT ends it.
TWO_LINES = (
    'f="$1$$"; echo $$ > "$f.tmp" && mv "$f.tmp" "$f"; until [ -e "$1go" ]; do sleep 0.05; done; echo one;'
    " exec sleep 20"
)


def test_a_reader_gone_under_lines_leaves_no_command_running_and_no_false_failure(factory, marks):
    """`exec --lines ... | head` exited as its interrupts were sent: a root login's goes over a channel of its own,
    not open yet, so the commands ran on; and the nodes exec itself had just interrupted were said to have failed
    (`exited with exit code 255`)."""
    read_end, write_end = os.pipe()
    argv = ["--config", factory, "exec", "--lines", "all", "-t", "60", "--", "sh", "-c", TWO_LINES, "x", f"{marks}/"]
    cli = subprocess.Popen([*CLI_ARGV, *argv], stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE)
    with reaped(cli) as proc:
        os.close(write_end)
        wait_for(lambda: len([p for p in marks.iterdir() if p.suffix != ".tmp"]) == 6, what="every node's command")
        groups = [group_of(int(p.read_text())) for p in marks.iterdir() if p.suffix != ".tmp"]
        os.close(read_end)  # `| head` has had enough: exec's next line meets EPIPE
        (marks / "go").touch()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err
    assert "exited with" not in err.decode()
    wait_for(lambda: not any(running_in_group(g) for g in groups), timeout=10, what="the commands to end with exec")
