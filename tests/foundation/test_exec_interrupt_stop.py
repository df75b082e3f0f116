"""`ExecRun.stopped`: after Ctrl-C, how long exec waits for its commands, and what it reports of them (in-process)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from process_groups import group_of
from waiting import wait_for

from factoryctl.cli.exec import ExecRun
from factoryctl.config import parse_config
from factoryctl.transport.base import CommandCut

#: Ignores SIGINT (noting it in $1/int) and SIGHUP: it runs on after the interrupt; says it runs in $1/PID.pid.
STUBBORN = (
    'trap \'echo int > "$1/int"\' INT; trap \'\' HUP; echo hi; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; '
    "while :; do sleep 0.1; done"
)


def started_group(marks: Path) -> int:
    """The process group of the command once it said it runs."""
    wait_for(lambda: any(marks.glob("*.pid")))
    return group_of(int(next(marks.glob("*.pid")).read_text()))


def test_a_second_ctrl_c_ends_the_wait_for_the_commands(tmp_path):
    """A command that ignores the first Ctrl-C is not waited for once Ctrl-C comes again (here: a 60 s grace)."""
    config = parse_config("name: lab\nnodes:\n  s1: {transport: local}\n", tmp_path / "f.yaml", tmp_path)
    run = ExecRun(config, list(config.nodes.values()), ["sh", "-c", STUBBORN, "x", str(tmp_path)], 120, 4)

    def ctrl_c_twice() -> None:
        started_group(tmp_path)
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: signal.getsignal(signal.SIGINT) is not signal.default_int_handler)  # waiting for commands
        wait_for((tmp_path / "int").exists)
        os.kill(os.getpid(), signal.SIGINT)

    ctrl_c = threading.Thread(target=ctrl_c_twice)
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run.wait()
        started = time.monotonic()
        [(_, outcome)] = run.stopped(60, threading.Event())
        assert time.monotonic() - started < 30  # not the 60 s grace
        assert isinstance(outcome, CommandCut)
        assert (outcome.kind, outcome.stdout) == ("interrupted", b"hi\n")
        assert outcome.message.startswith("command interrupted, but still running")
    finally:
        ctrl_c.join()
        os.killpg(started_group(tmp_path), signal.SIGKILL)


def test_a_second_ctrl_c_cutting_the_interrupt_loop_short_leaves_no_command_unsignalled() -> None:
    """Every transport was marked signalled before any was: a KeyboardInterrupt in the loop left the rest never
    interrupted, and the retry skipped them (they ran on, over SSH on the nodes)."""
    from factoryctl.transport.fanout import RunningCommands

    class Commands:
        def __init__(self, cut_short: bool = False) -> None:
            self.cut_short, self.interrupts = cut_short, 0

        def interrupt(self) -> None:
            self.interrupts += 1
            if self.cut_short:
                self.cut_short = False
                raise KeyboardInterrupt  # the second Ctrl-C, while the first one's loop runs

        def close(self) -> None:
            pass

    running = RunningCommands()
    nodes = {"a": Commands(), "b": Commands(cut_short=True), "c": Commands(), "d": Commands()}
    for name, commands in nodes.items():
        running.admit(name, commands)  # type: ignore[arg-type]
    with contextlib.suppress(KeyboardInterrupt):
        running.interrupt_all()
    running.interrupt_all()  # what ExecRun.stopped does again after a second signal
    # b's interrupt was cut short (its signals may not have gone out), so it is sent again; c and d were reached
    assert {name: c.interrupts for name, c in nodes.items()} == {"a": 1, "b": 2, "c": 1, "d": 1}


@pytest.mark.parametrize("where", ["interrupt_all", "stopped_status", "stopped"])
def test_a_second_ctrl_c_before_the_wait_for_the_commands_still_reports_them(tmp_path, where, monkeypatch):
    """The second Ctrl-C of a double one landed after the first had left the fan-out's wait and before exec waited
    for its commands (interrupting them, taking the stop's status, or as the wait began, once exec's block had
    handed its handlers back): it raised out of exec, which said only `factoryctl: interrupted`, not what each node
    did (CI, under load: 10 ms apart)."""
    from factoryctl.cli import exec as exec_module

    config = parse_config("name: lab\nnodes:\n  s1: {transport: local}\n", tmp_path / "f.yaml", tmp_path)
    run = ExecRun(config, list(config.nodes.values()), ["sh", "-c", STUBBORN, "x", str(tmp_path)], 120, 4)
    owners = {"interrupt_all": run._live, "stopped_status": exec_module, "stopped": run}  # the last: its start
    owner, name = owners[where], where
    original, sent = getattr(owner, name), []

    def second_ctrl_c(*args: object) -> object:
        if not sent:
            sent.append(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # handled at the next bytecode: right here
        return original(*args)

    monkeypatch.setattr(owner, name, second_ctrl_c)
    first = threading.Thread(target=lambda: (started_group(tmp_path), os.kill(os.getpid(), signal.SIGINT)))
    first.start()
    try:
        outcomes, status = exec_module.run_interruptible(run)
        [(_, outcome)] = outcomes
        assert (status, sent) == (130, [signal.SIGINT])
        assert isinstance(outcome, CommandCut)  # it ignores SIGINT and HUP: not waited for past the second Ctrl-C
        assert outcome.message.startswith("command interrupted, but still running")
    finally:
        first.join()
        os.killpg(started_group(tmp_path), signal.SIGKILL)
