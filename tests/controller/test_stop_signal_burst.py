"""A burst of SIGTERMs stops the controller cleanly: exit 0, `controller stopped`, one `received SIGTERM` line.

Its SIGTERM handler logged `received SIGTERM: stopping` itself. A handler runs between two bytecodes of the main
thread and the next signal's handler between two of the first, so each SIGTERM of a burst nested a log call (dozens
of frames) in the one before: RecursionError, `factoryctl: unexpected error`, exit 1 (3 runs in 6 of
`kill -TERM` x300 during the shutdown). Now the handler only asks for the stop, and the loop says it once.

The first test runs the handler on a small stack (nesting multiplies what it takes), the second sends a real burst
to `controller run`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reaping import reaped
from store_rows import event_kinds

#: The controller's SIGTERM handler run on a stack with room for `HANDLER_FRAMES` frames more than where it lands: a
#: burst of SIGTERMs nests each handler in the one before, so what each takes is multiplied by the burst.
ON_A_SMALL_STACK = """
import signal, sys
from pathlib import Path
from factoryctl.config import load_config
from factoryctl.controller import Controller, configure_logging

configure_logging("info")
controller = Controller(load_config(Path(sys.argv[1])))
controller.install_signal_handlers()
frame, depth = sys._getframe(), 0
while frame is not None:
    frame, depth = frame.f_back, depth + 1
sys.setrecursionlimit(depth + int(sys.argv[2]))
signal.raise_signal(signal.SIGTERM)
sys.setrecursionlimit(1000)
print(f"stop requested: {controller._stop_requested}")
"""
#: Frames a stop handler may take: 200 nested in a 1000-frame stack, and a log line took over 10.
HANDLER_FRAMES = 5


#: `controller run` stopped by SIGTERM as soon as it has started, and a second SIGTERM once it has returned, before
#: the CLI's own block has ended. Each sent through C's raise(): it lands at the next bytecode.
SIGTERM_AFTER_THE_STOP = """
import ctypes, signal, sys

send = getattr(ctypes.CDLL(None), "raise")
sys.argv = ["factoryctl", "--config", sys.argv[1], "controller", "run"]
from factoryctl import controller
from factoryctl.cli.app import main

run, run_controller = controller.Controller.run, controller.run_controller

def stopped_at_once(self):
    send(signal.SIGTERM)
    return run(self)

def then_sigterm(*args, **kwargs):
    status = run_controller(*args, **kwargs)
    send(signal.SIGTERM)
    return status

controller.Controller.run = stopped_at_once
controller.run_controller = then_sigterm
main()
"""


def config_file(tmp_path: Path) -> Path:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    return config


def test_the_stop_handler_needs_few_frames(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", ON_A_SMALL_STACK, str(config_file(tmp_path)), str(HANDLER_FRAMES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout == "stop requested: True\n", child.stderr[-3000:]
    assert "Traceback" not in child.stderr, child.stderr[-3000:]  # RecursionError
    assert "Logging error" not in child.stderr, child.stderr[-3000:]


def test_a_sigterm_after_the_controller_stopped_changes_nothing(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", SIGTERM_AFTER_THE_STOP, str(config_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-3000:]  # 143, `factoryctl: terminated` after `controller stopped`
    assert "controller stopped: " in child.stderr, child.stderr[-3000:]
    assert "factoryctl:" not in child.stderr, child.stderr[-3000:]


@pytest.mark.slow
def test_a_burst_of_sigterms_stops_the_controller_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "controller.log"
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config_file(tmp_path)), "controller", "run"]
    with log.open("wb") as stderr, reaped(subprocess.Popen(argv, stderr=stderr)) as proc:
        started = time.monotonic() + 60
        while "collecting from" not in log.read_text() and proc.poll() is None and time.monotonic() < started:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # into its shutdown
        for _ in range(300):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 30 s after SIGTERM; its log ends:\n{log.read_text()[-2000:]}")
    said = log.read_text()
    assert proc.returncode == 0, said[-3000:]
    assert said.count("received SIGTERM: stopping") == 1, said[-3000:]
    assert "controller stopped: " in said, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    assert event_kinds(tmp_path / "state" / "factory.db").count("controller_stop") == 1
