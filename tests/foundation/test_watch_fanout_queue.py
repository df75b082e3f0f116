"""`--watch` calls a node slow only when its own ask outlasts a round, not when it waits its turn behind `--fanout`.

A review watched 12 healthy local nodes with `nodes all --watch --interval 0.5 -f 1`: a pass over them took longer than
a round (1 s at least), so at every redraw the nodes still queued for the one slot, or asked a moment before, were
`degraded` with `waiting its turn to be asked again (--fanout: 1 nodes at once).` or `no answer for 0 s` as errors.
Now such a node keeps its last row as it was, no error, and one not heard from yet gets none until it answers. The
fleet here is `NODES` simulated local nodes asked one at a time (each ask a fresh agent, about 0.1 s), so a pass
outlasts the rounds; the redraws are counted (Ctrl-C at a pause, as `test_gpus_watch_silent_node`), never timed.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

#: Nodes in the fleet; passes each node must be seen answering before the watch stops; the most rounds it may take.
NODES = 16
PASSES = 1
MOST_ROUNDS = 30

Redraw = dict[str, Any]


def _fleet(path: Path) -> Path:
    nodes = "".join(
        f"  n{i:02d}: {{transport: local, sim: {{profile: h100-sxm, gpus: 1, seed: {i}}}}}\n" for i in range(NODES)
    )
    path.write_text(f"name: lab\nnodes:\n{nodes}")
    return path


def _redraws(text: str) -> list[Redraw]:
    return [json.loads(line) for line in text.splitlines()]


def _readings(redraws: list[Redraw], node: str) -> list[str]:
    """The distinct readings (LAST SEEN) of `node` shown across `redraws`."""
    seen = [item["last_seen"] for r in redraws for item in r["items"] if item["node"] == node]
    return sorted({s for s in seen if s is not None})


def _passes_done(redraws: list[Redraw]) -> bool:
    return all(len(_readings(redraws, f"n{i:02d}")) > PASSES for i in range(NODES))


def _asks_ended() -> None:
    """Wait for the asks still going at Ctrl-C to end, so no thread of this test outlives it."""
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("watch-")], what="the asks to end")


def test_healthy_nodes_queued_behind_the_fanout_are_not_called_slow(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[int] = []

    def pause(seconds: float) -> None:
        rounds.append(1)
        if _passes_done(_redraws(sys.stdout.getvalue())) or len(rounds) >= MOST_ROUNDS:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    monkeypatch.setattr("factoryctl.cli.listing.pause_while_read", pause)
    path = _fleet(tmp_path / "factory.yaml")
    try:
        result = cli("--config", str(path), "nodes", "all", "-w", "--interval", "0.1", "-f", "1", "-o", "json")
    finally:
        _asks_ended()
    assert result.exit_code == 130, result.stderr
    redraws = _redraws(result.stdout)
    assert len(redraws) == len(rounds)
    assert _passes_done(redraws), redraws
    # was: at each redraw a few healthy nodes `degraded` with a `timeout` error, printed on stderr too
    assert [r["errors"] for r in redraws] == [[]] * len(redraws)
    assert result.stderr == ""
    kept = 0
    for i in range(NODES):
        rows = [next(item for item in r["items"] if item["node"] == f"n{i:02d}") for r in redraws]
        states = [(row["state"], row["error"]) for row in rows]
        first = states.index(("up", None))  # before its first answer: no row of its own (`connecting`, no error)
        assert set(states[:first]) <= {("connecting", None)}, states
        assert set(states[first:]) == {("up", None)}, states
        shown = [row["last_seen"] for row in rows[first:]]
        kept += sum(a == b for a, b in itertools.pairwise(shown))
    assert kept, "no node kept its row across a redraw: every pass fit in a round, so the queue was never seen"
