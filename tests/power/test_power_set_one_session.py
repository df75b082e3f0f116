"""`power set` reads a node's GPUs and changes its limits in one agent session, never more open than `--fanout`.

It used to start two agents per node (one to read the ranges, one for the change): 100 agent processes for 50 nodes,
and over SSH two logins per node. Each node's `python:` here is a wrapper that logs, as its agent starts, the node
and how many of these agents are alive at that moment (itself included), then becomes the real interpreter.
Counted, not timed.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

#: A node's `python:`: notes its pid, counts the live agents it started, logs `<alive> <args>`, then runs the agent.
COUNTING_PYTHON = """#!/bin/sh
touch {markers}/$$
alive=0
for marker in {markers}/*; do kill -0 "${{marker##*/}}" 2>/dev/null && alive=$((alive + 1)); done
echo "$alive $*" >> {log}
exec {python} "$@"
"""


def counted_fleet(tmp_path: Path, nodes: int, gpus: int = 2) -> tuple[Path, Path]:
    """A factory of `nodes` simulated local nodes whose agents are counted; (its factory.yaml, the start log)."""
    markers, log = tmp_path / "agents", tmp_path / "agents.log"
    markers.mkdir()
    python = tmp_path / "counting-python"
    python.write_text(COUNTING_PYTHON.format(markers=markers, log=log, python=sys.executable))
    python.chmod(0o755)
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n[1-{nodes}]: {{transport: local, sim: {{profile: h100-sxm, gpus: {gpus}}}, python: {python}}}\n"
    )
    return config, log


def agent_starts(log: Path) -> tuple[Counter[str], int]:
    """How many agents each node started, and the most that were alive at once."""
    per_node: Counter[str] = Counter()
    most = 0
    for line in log.read_text().splitlines():
        alive, *args = line.split()
        per_node[args[args.index("--node") + 1]] += 1
        most = max(most, int(alive))
    log.write_text("")
    return per_node, most


def test_power_set_starts_one_agent_per_node(cli, tmp_path: Path) -> None:
    config, log = counted_fleet(tmp_path, 3)
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "500")
    assert changed.exit_code == 0, changed.stderr
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}  # read and change in one session
    addressed = cli("--config", str(config), "power", "set", "all/1", "--watts", "450", "--clamp")
    assert addressed.exit_code == 0, addressed.stderr
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}  # GPUs named: read for them, same session
    reset = cli("--config", str(config), "power", "reset", "all")
    assert reset.exit_code == 0, reset.stderr
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}  # nothing to read first
    audit = cli("--config", str(config), "audit", "-o", "json").json()["items"]
    assert len(audit) == 3 * 2 + 3 + 3 * 2  # every change recorded, as before


def test_a_refused_request_closes_the_sessions_it_read_with(cli, tmp_path: Path) -> None:
    config, log = counted_fleet(tmp_path, 3)
    refused = cli("--config", str(config), "power", "set", "all", "--watts", "5000")
    assert refused.exit_code == 2
    assert "nothing was changed" in refused.stderr
    assert agent_starts(log)[0] == {"n1": 1, "n2": 1, "n3": 1}
    after = cli("--config", str(config), "gpus", "-o", "json", "--fanout", "1").json()["items"]
    assert {gpu["power_limit_w"] for gpu in after} == {700}  # nothing changed on any node
    _, alive_after_refusal = agent_starts(log)
    assert alive_after_refusal == 1  # each of `gpus`'s agents alone: the refused request's had all ended


def test_a_fleet_larger_than_the_fanout_holds_no_more_sessions_than_it(cli, tmp_path: Path) -> None:
    """Past `--fanout`, the nodes it cannot hold are read first and open a second session for their change."""
    config, log = counted_fleet(tmp_path, 4)
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "500", "--fanout", "2")
    assert changed.exit_code == 0, changed.stderr
    per_node, most_alive = agent_starts(log)
    assert per_node == {"n1": 1, "n2": 1, "n3": 2, "n4": 2}
    assert most_alive <= 2
    assert changed.stdout.splitlines()[1].split() == ["n[1-4]", "(4)", "0-1", "700", "500", "no"]
