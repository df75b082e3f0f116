"""A stop after the first one never cuts the clean-up: no traceback, no death by SIGTERM, the result still said.

A reviewer sent Ctrl-C to `exec` over SSH, then Ctrl-C and SIGTERM alternating every 5-20 ms: 3 runs in 11 went
wrong. A Ctrl-C counted as a stop but did not make a block stopped, so the SIGTERM after it still raised
`Terminated`: inside the error boundary's hand-over of its handlers (a traceback, exit 1), or cutting that hand-over
short, so that SIGTERM kept a handler the interpreter resets at shutdown and the next SIGTERM killed the process (-15,
`lost sys.stderr`, none of exec's result). A second Ctrl-C as exec printed its result raised KeyboardInterrupt there
and lost the result. Now, once a stop (Ctrl-C included) has reached a block, the others only shorten the clean-up,
and nothing is raised while a block hands its handlers over.

A real process each, with real signals through C's raise(): at the first call of the functions named, or at every
call of `signal.signal` from the first stop on, where the handlers are handed over.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stop_children import one_node_factory, run_script
from stop_messages import HUNG_UP, INTERRUPTED, TERMINATED

#: argv: factory.yaml, the command's words joined by spaces, then steps: `module:attribute.path:SIGNAL` sends SIGNAL
#: as that function is first called; `every-handler-change:SIGNAL` sends SIGNAL at each `signal.signal` call from the
#: first step's signal on (the profile hook sees each call; the signal lands at the next bytecode).
SIGNALS_AT_CALLS = """
import _signal, ctypes, faulthandler, functools, importlib, signal, sys

faulthandler.dump_traceback_later(20, exit=True)
send = getattr(ctypes.CDLL(None), "raise")
config, words, *plan = sys.argv[1:]
sys.argv = ["factoryctl", "--config", config, *words.split()]
from factoryctl.cli.app import main

armed = []

def signal_first(function, signum):
    sent = []

    @functools.wraps(function)
    def signalled(*args, **kwargs):
        if not sent:
            sent.append(signum)
            armed.append(signum)
            send(signum)  # C's raise(): it lands at the next bytecode, the call below
        return function(*args, **kwargs)

    return signalled

def on_every_handler_change(signum):
    def hook(frame, event, arg):
        if armed and event == "c_call" and arg is _signal.signal:
            send(signum)
    sys.setprofile(hook)

for step in plan:
    where, _, signame = step.rpartition(":")
    if where == "every-handler-change":
        on_every_handler_change(getattr(signal, signame))
        continue
    module_name, _, path = where.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    setattr(owner, name, signal_first(getattr(owner, name), getattr(signal, signame)))
main()
"""


def run_child(config: Path, words: str, *plan: str) -> subprocess.CompletedProcess[str]:
    return run_script(SIGNALS_AT_CALLS, config, words, *plan)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return one_node_factory(tmp_path, "{transport: local}")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_stops_while_the_boundary_hands_its_handlers_over_change_nothing(config: Path, signame: str) -> None:
    """Ctrl-C stops `config validate`; another stop at every handler change from then on (the hand-over included)."""
    child = run_child(
        config, "config validate", "factoryctl.config:load_config:SIGINT", f"every-handler-change:{signame}"
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert (child.returncode, child.stderr.splitlines()) == (130, INTERRUPTED), child.stderr


@pytest.mark.parametrize(("signame", "status", "said"), [("SIGTERM", 143, TERMINATED), ("SIGHUP", 129, HUNG_UP)])
def test_a_ctrl_c_after_a_sigterm_changes_nothing_either(
    config: Path, signame: str, status: int, said: list[str]
) -> None:
    child = run_child(
        config, "config validate", f"factoryctl.config:load_config:{signame}", "every-handler-change:SIGINT"
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert (child.returncode, child.stderr.splitlines()) == (status, said), child.stderr


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_sigterm_after_exec_s_ctrl_c_only_shortens_its_clean_up(config: Path, signame: str) -> None:
    """Ctrl-C as exec waits for its commands, then SIGTERM (or SIGHUP) while it interrupts its commands: still a Ctrl-C."""
    child = run_child(
        config,
        "exec n1 -- true",
        "factoryctl.transport.fanout:FanOut.run:SIGINT",
        f"factoryctl.transport.fanout:RunningCommands.interrupt_all:{signame}",
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert child.returncode == 130, child.stderr
    assert child.stderr.splitlines()[-2:] == INTERRUPTED


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_sigterm_while_exec_prints_its_result_keeps_the_result(config: Path, signame: str) -> None:
    """exec, stopped by Ctrl-C, says each node's outcome: a SIGTERM (SIGHUP) while it does cuts none of it."""
    child = run_child(
        config,
        "exec n1 -- true",
        "factoryctl.transport.fanout:FanOut.run:SIGINT",
        f"factoryctl.cli.exec_output:print_outcomes:{signame}",
        f"every-handler-change:{signame}",
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert child.returncode == 130, child.stderr
    said = child.stderr.splitlines()
    assert said[-2:] == INTERRUPTED
    assert [line for line in said[:-2] if line.startswith("factoryctl: n1: ")], child.stderr  # its outcome, said


@pytest.mark.parametrize(
    ("signame", "status", "said"),
    [("SIGINT", 130, INTERRUPTED), ("SIGTERM", 143, TERMINATED), ("SIGHUP", 129, HUNG_UP)],
)
def test_a_ctrl_c_while_exec_prints_ends_it_as_the_first_stop_said(
    config: Path, signame: str, status: int, said: list[str]
) -> None:
    """Ctrl-C again ends at once what exec still prints (a reader that stopped reading), with the first stop's status."""
    child = run_child(
        config,
        "exec n1 -- true",
        f"factoryctl.transport.fanout:FanOut.run:{signame}",
        "factoryctl.cli.exec_output:print_outcomes:SIGINT",
        "every-handler-change:SIGINT",
    )
    assert "Traceback" not in child.stderr, child.stderr
    assert (child.returncode, child.stderr.splitlines()) == (status, said), child.stderr


#: A stop another handler raised (`--schedule-out`'s own, which no block counts) is on its way out of the error
#: boundary's block when a Ctrl-C of the same burst comes: it runs the stop's clean-up, which goes on.
CTRL_C_AS_ANOTHER_STOP_LEAVES = """
import signal
from factoryctl.cli.signals import sigterm_interrupts

try:
    with sigterm_interrupts(replaced={}):
        try:
            raise KeyboardInterrupt  # the first Ctrl-C of the burst, raised by --schedule-out's handler
        finally:
            signal.raise_signal(signal.SIGINT)  # the next one, as the clean-up runs
            print("clean-up done")
except KeyboardInterrupt as stopped:
    print(f"left with {stopped.__context__!r}")
"""


def test_a_ctrl_c_as_another_handler_s_stop_leaves_the_boundary_cuts_no_clean_up() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CTRL_C_AS_ANOTHER_STOP_LEAVES], capture_output=True, text=True, timeout=60
    )
    assert (child.returncode, child.stdout.splitlines()) == (0, ["clean-up done", "left with None"]), child.stderr
