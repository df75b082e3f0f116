"""A signal that lands while the controller's loop waits for its next wake-up is acted on, never a deadlock.

The loop waited on a `threading.Event` that its SIGTERM and SIGHUP handlers set. Python runs a handler in the main
thread between two bytecodes, so one that landed while the loop was inside `Event.wait`/`clear` (holding the
event's lock) blocked in `Event.set` on that same lock for ever: a controller that ignored SIGTERM until SIGKILL,
the symptom test_hangup_while_starting.py once met under load (its SIGTERM comes right after a reload, loop running).

Both tests run a real process, its signals sent by the kernel: the first lands one at every step of the wait (a
profile hook of the main thread sends them), the second sends a storm of SIGHUPs to `controller run`, then SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reaping import reaped

#: Waits as the loop does, each with a SIGHUP sent at one call or return of the main thread inside the wait (the
#: first, the second, ...), handled by the controller's own handler at the next bytecode. A handler that deadlocks
#: ends the process with its stack after 20 s.
SIGNAL_AT_EVERY_STEP = """
import faulthandler, os, signal, sys
from pathlib import Path
from factoryctl.config import load_config
from factoryctl.controller import Controller

faulthandler.dump_traceback_later(20, exit=True)
controller = Controller(load_config(Path(sys.argv[1])))
controller.install_signal_handlers()
sent = 0

def in_a_handler(frame):
    while frame is not None:
        if frame.f_code.co_name in ("on_hup", "on_stop"):
            return True
        frame = frame.f_back
    return False

def hang_up_at(target):
    steps = [0]

    def hang_up_here(frame, event, arg):
        global sent
        if not in_a_handler(frame):
            steps[0] += 1
            if steps[0] == target:
                signal.raise_signal(signal.SIGHUP)
                sent += 1

    return hang_up_here

for target in range(1, 80):  # one wait each, with its SIGHUP at its first step, its second, ... (past its last)
    sys.setprofile(hang_up_at(target))
    controller._wake.wait(0.001)
    sys.setprofile(None)
    controller._wake.wait(0.001)  # the wake-up left by a SIGHUP after the wait took its own
print(f"waited, {sent} SIGHUPs, reload requested: {controller._reload_requested}")
"""


def config_file(tmp_path: Path) -> Path:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    return config


def test_a_signal_at_any_step_of_the_loops_wait_is_handled(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SIGNAL_AT_EVERY_STEP, str(config_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr  # a deadlock: "Timeout (0:00:20)!" and the handler's stack
    assert "reload requested: True" in run.stdout, run.stdout + run.stderr


@pytest.mark.slow
def test_the_controller_stops_on_sigterm_after_a_storm_of_sighups(tmp_path: Path) -> None:
    log = tmp_path / "controller.log"
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config_file(tmp_path)), "controller", "run"]
    with log.open("wb") as stderr, reaped(subprocess.Popen(argv, stderr=stderr)) as proc:
        started = time.monotonic() + 60
        while "collecting from" not in log.read_text() and proc.poll() is None and time.monotonic() < started:
            time.sleep(0.1)  # running: its own handlers in place
        ends = time.monotonic() + 3.0
        while time.monotonic() < ends and proc.poll() is None:
            proc.send_signal(signal.SIGHUP)  # each a reload; many land while the loop waits
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)  # it waited for ever about one run in three
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 30 s after SIGTERM; its log ends:\n{log.read_text()[-2000:]}")
    assert proc.returncode == 0, log.read_text()[-2000:]
