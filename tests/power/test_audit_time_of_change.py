"""An audit entry's time is when its node changed the limit (its reply's arrival), not when the command ended.

`power set` over several nodes records once every node has answered; each entry still carries the time its own
node answered, and the entries are written (their ids) in that order. Real agents on the simulated driver (local
transport); node `a-slow`, listed first, has a Python that waits a few seconds before starting its agent, so node
`b-fast` changes its limits well before it. The slow node's wrapper notes when it starts its agent: the times are
compared with that moment, not with a gap that a loaded machine's slow agent starts would shrink.
"""

from __future__ import annotations

import sys
from pathlib import Path

SLOW_START_S = 5


def factory_with_a_slow_node(tmp_path: Path) -> Path:
    slow = tmp_path / "slowpy"
    started = tmp_path / "slow-started"
    slow.write_text(f'#!/bin/sh\nsleep {SLOW_START_S}\ndate +%s.%N >> "{started}"\nexec "{sys.executable}" "$@"\n')
    slow.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        "name: lab\nnodes:\n"
        f"  a-slow: {{transport: local, python: {slow}, sim: {{profile: h100-sxm, gpus: 2, seed: 4}}}}\n"
        "  b-fast: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    return path


def test_each_entry_has_its_own_nodes_time_and_entries_are_written_in_that_order(cli, tmp_path):
    factory = factory_with_a_slow_node(tmp_path)
    result = cli("--config", str(factory), "power", "set", "all", "--watts", "400", "--clamp", "--timeout", "30")
    assert result.exit_code == 0, result.stderr
    entries = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    entries.sort(key=lambda entry: entry["id"])
    assert [(e["node"], e["gpu"]) for e in entries] == [("b-fast", 0), ("b-fast", 1), ("a-slow", 0), ("a-slow", 1)]
    fast, slow = entries[:2], entries[2:]
    assert fast[0]["time"] == fast[1]["time"]  # one reply for the node's GPUs
    assert slow[0]["time"] == slow[1]["time"]
    slow_agent_started = float((tmp_path / "slow-started").read_text().split()[-1])  # the agent that changed it
    assert _seconds(fast[0]["time"]) < slow_agent_started <= _seconds(slow[0]["time"]) + 0.001, (fast, slow)


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
