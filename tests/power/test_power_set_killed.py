"""`power set` killed with SIGKILL after a node changed its limits still leaves a trace of every change in the audit log.

SIGKILL cannot be caught (the OOM killer, `timeout -k`, systemd's stop escalation): each node's request is written
before any node is asked, and each answer replaces its request as it comes. A node that answered before the kill is
in the log with before and after; a node asked whose answer never reached factoryctl keeps its request, outcome
`unknown`, with the value asked. Real agents on the simulated driver (local transport); the tests kill a real
`python -m factoryctl` subprocess at a point where a node has changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reaping import reaped
from test_power_set_interrupted import slow_factory
from waiting import wait_for

from factoryctl.store.sqlite import Store

#: Passes the agent's lines on, but holds a power-limit reply (it has `enforced_w`) until the agent's output ends:
#: the node has changed its limits, and factoryctl has not heard.
HOLD_REPLY = """
import sys
held = []
for line in sys.stdin:
    if "enforced_w" in line:
        held.append(line)
        continue
    sys.stdout.write(line)
    sys.stdout.flush()
"""


def _factory_whose_set_reply_is_held(tmp_path: Path) -> Path:
    hold = tmp_path / "hold_reply.py"
    hold.write_text(HOLD_REPLY)
    python = tmp_path / "heldpy"
    python.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | "{sys.executable}" "{hold}"\n')
    python.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  held: {{transport: local, python: {python}, sim: {{profile: h100-sxm, gpus: 2, seed: 3}}}}\n"
    )
    return path


def _limits(cli, factory: Path, node: str) -> list[float]:
    return [g["power_limit_w"] for g in cli("--config", str(factory), "gpus", node, "-o", "json").json()["items"]]


def _killed_once(cli, factory: Path, node: str, argv: list[str]) -> None:
    """Run `power set` with `argv` and SIGKILL it once `node`'s GPUs are at 450 W."""
    command = [sys.executable, "-m", "factoryctl", "--config", str(factory), "power", "set", *argv, "-o", "json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(lambda: set(_limits(cli, factory, node)) == {450}, timeout=60, what=f"{node} at 450 W")
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == -9


def test_a_node_whose_answer_never_came_keeps_its_request_with_outcome_unknown(cli, tmp_path):
    factory = _factory_whose_set_reply_is_held(tmp_path)
    _killed_once(cli, factory, "held", ["held", "--watts", "450", "--reason", "grid peak"])
    listed = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    assert [(e["node"], e["gpu"], e["action"], e["after_w"], e["reason"]) for e in listed] == [
        ("held", None, "set", None, "grid peak")  # every GPU of the node, its limit after not known
    ]
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        [entry] = store.audit(0)
    finally:
        store.close()
    assert (entry.outcome, entry.requested_w, entry.before_w) == ("unknown", 450.0, None)


def test_a_node_that_answered_before_the_kill_is_recorded_with_before_and_after(cli, tmp_path):
    factory = slow_factory(tmp_path)  # `fast` answers at once, `slow` never starts its agent
    _killed_once(cli, factory, "fast", ["all", "--watts", "450", "--clamp"])
    listed = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    assert [(e["node"], e["gpu"], e["before_w"], e["after_w"]) for e in listed] == [
        ("slow", None, None, None),  # its agent still starting when killed: its request stays, outcome unknown
        ("fast", 0, 700.0, 450.0),
        ("fast", 1, 700.0, 450.0),
    ]


def test_a_node_that_does_not_answer_in_time_keeps_its_request(cli, tmp_path):
    """The command ends (124, "the limit may have changed"); the audit log says the same, rather than nothing."""
    factory = _factory_whose_set_reply_is_held(tmp_path)
    result = cli("--config", str(factory), "power", "set", "held", "--watts", "450", "--timeout", "3")
    assert result.exit_code == 124, result.stderr
    assert "the limit may have changed" in result.stderr
    assert _limits(cli, factory, "held") == [450, 450]
    listed = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    assert [(e["node"], e["gpu"], e["action"], e["after_w"]) for e in listed] == [("held", None, "set", None)]
