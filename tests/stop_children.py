"""Child processes for the tests of stops: a script that runs the CLI with signals sent at chosen calls, on one node.

The signal tests (tests/foundation/test_stop_*.py, test_hangup_exit_status.py) each run the real CLI in a child
Python with its own plan of where a signal lands; the way they start it, and the one-node factory.yaml they give
it, are the same.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: Runs the CLI's `main`, each signal raised (C's raise(), so it lands at the next bytecode) at the first call of the
#: function named. argv: factory.yaml, the command's words joined by spaces, then `module.function:SIGNAL`s.
SIGNALS_AT_CALLS = """
import ctypes, faulthandler, functools, importlib, signal, sys

faulthandler.dump_traceback_later(20, exit=True)
send = getattr(ctypes.CDLL(None), "raise")
config, words, *plan = sys.argv[1:]
sys.argv = ["factoryctl", "--config", config, *words.split()]
from factoryctl.cli.app import main

def signal_first(function, signum):
    sent = []

    @functools.wraps(function)
    def signalled(*args, **kwargs):
        if not sent:
            sent.append(signum)
            send(signum)  # C's raise(): it lands at the next bytecode, the call below
        return function(*args, **kwargs)

    return signalled

for step in plan:
    where, _, signame = step.partition(":")
    module, _, name = where.rpartition(".")
    module = importlib.import_module(module)
    setattr(module, name, signal_first(getattr(module, name), getattr(signal, signame)))
main()
"""
#: A local node on the simulated driver (an H100): `gpus`, `exec` and `power set` run without a GPU.
SIMULATED_NODE = "{transport: local, sim: {profile: h100-sxm}}"


def run_script(script: str, config: Path, words: str, *plan: str) -> subprocess.CompletedProcess[str]:
    """`script` run by this Python with the config, the command's words and the plan as its arguments."""
    argv = [sys.executable, "-c", script, str(config), words, *plan]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def one_node_factory(tmp_path: Path, entry: str = SIMULATED_NODE) -> Path:
    """A factory.yaml in `tmp_path` with its state there and one node `n1` (its `entry`)."""
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {entry}\n")
    return path
