"""A stop signal that lands inside the handler of the one before never hangs the command.

`sigterm_interrupts` (every command's block, and exec's) and exec's wait for interrupted commands (`signals_set`)
set a `threading.Event` from their handlers for every signal after the first. A handler runs between two bytecodes
of the main thread, and another signal's handler between two bytecodes of the first: one that landed while the one
before was inside `Event.set`, holding the Event's lock, blocked on that lock for ever (`exec` with a storm of
SIGTERMs hung 2 runs in 5, `exec` after Ctrl-C with a storm of them too). Now they give a `Wake`, which takes no
lock.

Each test runs a real process whose signals are sent by the kernel: a profile hook of the main thread sends the next
one at every C call's return inside the handler, where the old one held the Event's lock. A hang ends the process
with its stack after 20 s.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: On Python 3.10 the profile hook sees no C call inside a signal handler, so no signal is sent inside one and the
#: tests cannot stage the race (CI runs 3.11+, where they run).
NEEDS_3_11 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10's profile hook sees no calls inside a signal handler"
)

#: `deliver_inside(signum)`: from now on, the signal is sent again at every C call's return inside its handler (not
#: inside the handlers it nests: those run through once each).
DELIVER_INSIDE_THE_HANDLER = """
import ctypes, faulthandler, signal, sys

faulthandler.dump_traceback_later(20, exit=True)
nested = [0]
send = getattr(ctypes.CDLL(None), "raise")  # C's raise(): the handler runs at the next bytecode, not in the hook

def deliver_inside(signum):
    code = signal.getsignal(signum).__code__

    def send_again(frame, event, arg):
        depth = 0
        while frame is not None:
            depth += frame.f_code is code
            frame = frame.f_back
        if event == "c_return" and depth == 1:
            nested[0] += 1
            send(signum)

    sys.setprofile(send_again)
"""

SIGTERM_AFTER_THE_FIRST = (
    DELIVER_INSIDE_THE_HANDLER
    + """
from factoryctl.cli.signals import Terminated, sigterm_interrupts

with sigterm_interrupts() as again:
    try:
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("the first SIGTERM raised nothing")
    except Terminated:
        pass
    deliver_inside(signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)  # the second: it only sets `again`, and a third lands inside its handler
    sys.setprofile(None)
print(f"again set: {again.is_set()}, {nested[0]} nested")
"""
)

SIGNALS_WHILE_EXEC_STOPS = (
    DELIVER_INSIDE_THE_HANDLER
    + """
from factoryctl.cli.signals import signals_set, sigterm_interrupts

with sigterm_interrupts() as again, signals_set(again):  # as exec waits for the commands it interrupted
    deliver_inside(signal.SIGINT)
    signal.raise_signal(signal.SIGINT)
    sys.setprofile(None)
print(f"again set: {again.is_set()}, {nested[0]} nested")
"""
)


def run_child(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


@NEEDS_3_11
def test_a_sigterm_inside_the_handler_of_a_second_one_is_taken() -> None:
    child = run_child(SIGTERM_AFTER_THE_FIRST)
    assert child.returncode == 0, child.stderr  # a deadlock: "Timeout (0:00:20)!" and the handlers' stacks
    assert child.stdout.startswith("again set: True, "), child.stdout + child.stderr
    assert not child.stdout.startswith("again set: True, 0 "), "no signal landed inside the handler"


@NEEDS_3_11
def test_a_ctrl_c_inside_the_handler_of_exec_s_stop_wait_is_taken() -> None:
    child = run_child(SIGNALS_WHILE_EXEC_STOPS)
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("again set: True, "), child.stdout + child.stderr
    assert not child.stdout.startswith("again set: True, 0 "), "no signal landed inside the handler"
