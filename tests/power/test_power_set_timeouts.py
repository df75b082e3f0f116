"""`power set` timing out says what timed out, and whether the limit may have changed.

It used to give exec's words ("command did not finish within 15 s and may still be running on the node"), which
tell neither what hung nor whether a limit changed. Real agents on the simulated driver (local transport), started
through a stand-in interpreter (the node's `python:`) that holds the agent's answer back, or its start.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Runs the agent and passes its lines on, but holds every line after a power-limit request back for 30 s.
_SLOW_ANSWER = f"""#!{sys.executable}
import subprocess, sys, threading, time
agent = subprocess.Popen([{sys.executable!r}, *sys.argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
asked = threading.Event()
def answers():
    for line in agent.stdout:
        if asked.is_set():
            time.sleep(30)
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
threading.Thread(target=answers, daemon=True).start()
for line in sys.stdin.buffer:
    if b"power_limit" in line:
        asked.set()
    agent.stdin.write(line)
    agent.stdin.flush()
agent.stdin.close()
agent.wait()
"""

#: An agent that takes 30 s to start (says no hello in time).
_SLOW_START = f"""#!/bin/sh
sleep 30
exec {sys.executable} "$@"
"""


def _factory(tmp_path: Path, interpreter: str) -> str:
    python = tmp_path / "python-standin"
    python.write_text(interpreter)
    python.chmod(0o755)
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n1: {{transport: local, python: {python}, sim: {{profile: l40s, gpus: 1}}}}\n"
    )
    return str(factory)


def test_a_change_whose_answer_does_not_come_in_time_may_have_changed_the_limit(cli: Any, tmp_path: Path) -> None:
    factory = _factory(tmp_path, _SLOW_ANSWER)
    r = cli("--config", factory, "power", "set", "n1", "--watts", "250", "--timeout", "3", "-o", "json")
    assert r.exit_code != 0, r.stderr
    [error] = json.loads(r.stdout)["errors"]
    assert error["error"] == "timeout"
    assert error["message"] == "the agent did not answer the change within 3 s: the limit may have changed"
    assert "hint: check with `factoryctl gpus n1`; on a loaded node, give the command a longer --timeout." in r.stderr
    assert "command did not finish" not in r.stderr
    gpus = json.loads(cli("--config", factory, "gpus", "n1", "-o", "json").stdout)["items"]
    assert [gpu["power_limit_w"] for gpu in gpus] == [250.0]  # it had: the agent set it, its answer came late


def test_a_reset_whose_answer_does_not_come_in_time_says_reset(cli: Any, tmp_path: Path) -> None:
    factory = _factory(tmp_path, _SLOW_ANSWER)
    r = cli("--config", factory, "power", "reset", "n1", "--timeout", "3", "-o", "json")
    [error] = json.loads(r.stdout)["errors"]
    assert error["message"] == "the agent did not answer the reset within 3 s: the limit may have changed"


def test_an_agent_that_does_not_start_in_time_changed_nothing(cli: Any, tmp_path: Path) -> None:
    factory = _factory(tmp_path, _SLOW_START)
    r = cli("--config", factory, "power", "set", "n1", "--watts", "250", "--clamp", "--timeout", "2", "-o", "json")
    [error] = json.loads(r.stdout)["errors"]
    assert error["error"] == "timeout"
    assert error["message"] == "the agent did not say hello within 2 s; no limit was changed"  # what timed out
    assert "hint: find what hangs with `factoryctl nodes check n1`" in r.stderr  # the table's hint for a hung agent
    assert "factoryctl: no power limit was changed." not in r.stderr  # the node's message said it: once
