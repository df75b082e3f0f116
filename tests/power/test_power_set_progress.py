"""`power set` / `reset` on a terminal show how far they are, and an interrupted one says what it still waits for.

48 nodes took 7 s with nothing on the screen, while `nodes` and `gpus` show `asking the nodes: 42% ...`; Ctrl-C with
a hung node then waited 5 s (SETTLE_S) with no word. The line is on a terminal only, never under -q; the wait is
said off a terminal too. Real agents on the simulated driver (local transport); a real SIGINT to a real process.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fleet(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
    )
    return path


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Run `factoryctl ARGS` in this process, its stderr a terminal; (exit status, stdout, stderr)."""
    from factoryctl.cli import progress
    from factoryctl.cli.app import run

    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # as if the nodes were slow: no test waits on the clock
    out, err = io.StringIO(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = run(list(args))
    return code, out.getvalue(), err.getvalue()


def test_a_set_shows_each_step_on_a_terminal_then_wipes_it(monkeypatch, tmp_path) -> None:
    factory = str(_fleet(tmp_path))
    code, out, err = _on_a_terminal(monkeypatch, "--config", factory, "power", "set", "all", "--watts", "500")
    assert code == 0, err
    assert "\rreading the nodes' GPUs: " in err
    assert "of 3 nodes done" in err
    assert "\rchanging the limits: 100% of 3 nodes done" in err
    assert err.endswith("\r\x1b[K")  # wiped: nothing else is said, the table printed on a clean line
    assert out.splitlines()[1].split() == ["n[1-3]", "(3)", "0-1", "700", "500", "no"]
    code, _, err = _on_a_terminal(monkeypatch, "--config", factory, "power", "reset", "all")
    assert code == 0, err
    assert "\rresetting the limits: 100% of 3 nodes done" in err
    assert "reading" not in err  # a reset checks no range: its nodes are not read first


def test_no_progress_under_quiet_or_off_a_terminal(cli, monkeypatch, tmp_path) -> None:
    factory = str(_fleet(tmp_path))
    code, _, err = _on_a_terminal(monkeypatch, "-q", "--config", factory, "power", "set", "all", "--watts", "500")
    assert (code, err) == (0, "")
    monkeypatch.undo()
    from factoryctl.cli import progress

    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    result = cli("--config", factory, "power", "set", "all", "--watts", "450")
    assert (result.exit_code, result.stderr) == (0, "")


#: An agent's stand-in python: runs the real agent, passing lines both ways; `hold` says which request it sits on.
RELAY = """
import subprocess, sys, threading, time
hold = sys.argv[1]
agent = subprocess.Popen([sys.executable, *sys.argv[2:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
held = threading.Event()
def answers():
    for line in agent.stdout:
        if held.is_set():
            time.sleep(3600)
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
threading.Thread(target=answers, daemon=True).start()
for line in sys.stdin.buffer:
    if hold.encode() in line:
        if hold == "shutdown":
            time.sleep(3600)  # answered the change; its session's close then takes as long as factoryctl waits
        held.set()  # the change goes to the agent, its answer never comes back
    agent.stdin.write(line)
    agent.stdin.flush()
"""


def _relaying_python(tmp_path: Path, hold: str) -> Path:
    script = tmp_path / "relay.py"
    script.write_text(RELAY)
    python = tmp_path / f"relay-{hold}"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" {hold} "$@"\n')
    python.chmod(0o755)
    return python


def test_the_wait_names_only_the_nodes_that_have_not_answered(cli, tmp_path) -> None:
    """`closing` answered (its changes are listed) and is closing its session; only `hung` is waited for."""
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  closing: {{transport: local, python: {_relaying_python(tmp_path, 'shutdown')}, sim: {{profile: h100-sxm,"
        " gpus: 2}}\n"
        f"  hung: {{transport: local, python: {_relaying_python(tmp_path, 'power_limit')}, sim: {{profile: h100-sxm,"
        " gpus: 2}}\n"
    )
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "power", "set", "all", "--watts", "333"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def closing_answered() -> bool:  # its 2 GPUs in the audit log, beside hung's request (the store once it exists)
        audit = cli("--config", str(factory), "audit", "-o", "json")
        return audit.exit_code == 0 and len(audit.json()["items"]) == 3

    with reaped(proc):
        wait_for(closing_answered, timeout=60, what="closing's answer in the audit log")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.splitlines()[1].split() == ["closing", "0-1", "700", "333", "no"]
    assert err.splitlines()[:2] == [
        "factoryctl: waiting up to 5 s for hung to answer: its limits may be changing; Ctrl-C again stops the wait.",
        "factoryctl: hung: interrupted before this node answered: its limits may have changed (see `factoryctl gpus`)",
    ]
