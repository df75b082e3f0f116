"""`jobs submit --gpus-per-node G`: a gang runs one rank on each of its nodes, so it needs N/G nodes of G GPUs or more.

A node of 4 GPUs holds one rank of 2, never two: 16 GPUs in ranks of 2 need 8 such nodes, whatever GPUs four nodes
add up to. A shape no set of nodes can give is refused before anything is written (exit 2, docs/jobs.md); one they
can give is queued.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.store.sqlite import Store

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n[1-4]: {{transport: local, sim: {{profile: h100-sxm, gpus: 4, seed: 3}}}}
"""


@pytest.fixture
def lab(tmp_path: Path, cli: Any) -> Any:
    """`factoryctl -c factory.yaml ...` on 4 simulated nodes of 4 GPUs each."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    return lambda *args: cli("-c", str(config), *args)


def _jobs(tmp_path: Path) -> int:
    path = tmp_path / "state" / "factory.db"
    if not path.exists():
        return 0
    store = Store(path, readonly=True)
    try:
        return len(store.jobs())
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--gpus", "16", "--gpus-per-node", "2"], "the job asks for 8 node(s) with 2 GPUs each; the inventory"),
        (["--gpus", "4", "--gpus-per-node", "2", "--nodes", "n1"], "the job asks for 2 node(s) with 2 GPUs each"),
        (["--gpus", "10", "--gpus-per-node", "2", "--nodes", "n[1-4]"], "5 node(s) with 2 GPUs each; n[1-4] cannot"),
    ],
)
def test_a_gang_of_more_ranks_than_nodes_is_refused(lab: Any, tmp_path: Path, args: list[str], said: str) -> None:
    done = lab("jobs", "submit", *args, "--", "true")
    assert done.exit_code == 2, done.stderr
    assert said in done.stderr
    assert "so it could never start" in done.stderr
    assert "one rank on each of its nodes" in done.stderr
    assert done.stdout == ""
    assert _jobs(tmp_path) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--gpus", "8", "--gpus-per-node", "2"],
        ["--gpus", "16", "--gpus-per-node", "4"],
        ["--gpus", "2", "--gpus-per-node", "2", "--nodes", "n1"],
        ["--gpus", "12", "--gpus-per-node", "3"],
        ["--gpus", "16"],
    ],
)
def test_a_gang_the_nodes_can_hold_is_queued(lab: Any, tmp_path: Path, args: list[str]) -> None:
    done = lab("-q", "jobs", "submit", *args, "--", "true")
    assert done.exit_code == 0, done.stderr
    assert _jobs(tmp_path) == 1
