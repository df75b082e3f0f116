"""`jobs list --node TARGET`: the jobs on these nodes, as `squeue -w n01` lists them; TARGET as everywhere.

A job is on a node when it holds or held GPUs there (its NODES column). The TARGET grammar is the one of every
command (names, `n[1-2]` ranges, `@groups`, `all`), a TARGET naming no node a usage error, and the shell completes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.store.sqlite import Store

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n[1-3]: {{transport: local, sim: {{profile: h100-sxm, gpus: 4}}}}
groups:
  pair: n[2-3]
"""


def _job(job_id: str, state: JobState, *nodes: str, user: str = "alice") -> Job:
    allocation = tuple(GpuAllocation(node, 2) for node in nodes)
    ranks = tuple(Rank(i, node, pid=40 + i, gpus=(0, 1)) for i, node in enumerate(nodes))
    spec = JobSpec(2 * max(len(nodes), 1), name=f"job-{job_id}", user=user, command=("sleep", "60"))
    started = time.time() - 30 if nodes else None
    return Job(job_id, spec, time.time() - 60, state, started_at=started, allocation=allocation, ranks=ranks)


@pytest.fixture
def lab(tmp_path: Path, cli: Any) -> Any:
    """Jobs on n1 (a1), n[1-2] (b1, bob's), n3 (c1, STARTING) and one waiting (d1), in a real store."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / "factory.db")
    try:
        for job in (
            _job("a1", JobState.RUNNING, "n1"),
            _job("b1", JobState.RUNNING, "n1", "n2", user="bob"),
            _job("c1", JobState.STARTING, "n3"),
            _job("d1", JobState.PENDING),
        ):
            store.add_job(job)
    finally:
        store.close()

    def run(*args: str) -> Any:
        return cli("-c", str(config), *args)

    run.config = config  # type: ignore[attr-defined]
    return run


def _ids(lab: Any, *args: str) -> list[str]:
    done = lab("jobs", "list", *args, "-o", "json")
    assert done.exit_code == 0, done.stderr
    return [j["id"] for j in done.json()["items"]]


@pytest.mark.parametrize(
    ("target", "listed"),
    [
        ("n1", ["a1", "b1"]),
        ("n2", ["b1"]),
        ("n[2-3]", ["b1", "c1"]),
        ("@pair", ["b1", "c1"]),
        ("n[1-3]!n1", ["b1", "c1"]),
        ("all", ["a1", "b1", "c1"]),  # every job placed somewhere; the waiting one holds no node
    ],
    ids=["name", "one-rank-of-a-gang", "range", "group", "difference", "all"],
)
def test_node_lists_the_jobs_with_a_rank_on_those_nodes(lab: Any, target: str, listed: list[str]) -> None:
    assert _ids(lab, "--node", target) == listed


def test_node_combines_with_user_and_state_and_the_noun_alone(lab: Any) -> None:
    assert _ids(lab, "--node", "n1", "--user", "alice") == ["a1"]
    assert _ids(lab, "--node", "n[1-3]", "--state", "starting") == ["c1"]
    table = lab("jobs", "--node", "n2").stdout.splitlines()  # `jobs --node` is `jobs list --node`
    assert [line.split()[0] for line in table[1:]] == ["b1"]


def test_a_node_target_naming_no_node_is_a_usage_error(lab: Any) -> None:
    done = lab("jobs", "list", "--node", "n9")
    assert done.exit_code == 2
    assert "`n9` matches no node" in done.stderr
    assert done.stdout == ""
    empty = lab("jobs", "list", "--node", "")
    assert (empty.exit_code, "empty" in empty.stderr) == (2, True)


def test_the_shell_completes_node_and_its_targets(lab: Any) -> None:
    from test_completion import complete_bash

    inventory = {"FACTORYCTL_CONFIG": str(lab.config)}
    assert "--node" in complete_bash("factoryctl jobs list --no", inventory)
    assert complete_bash("factoryctl jobs list --node ", inventory) == ["all", "@pair", "n1", "n2", "n3"]
    assert complete_bash("factoryctl jobs list --node n", inventory) == ["n1", "n2", "n3"]


def test_a_requeued_job_is_listed_on_the_nodes_of_its_last_run(lab: Any) -> None:
    store = Store(Path(str(lab.config)).parent / "state" / "factory.db")
    try:
        store.add_job(_job("e1", JobState.RUNNING, "n3").requeued("preempted for job a1", 0))
    finally:
        store.close()
    assert "e1" in _ids(lab, "--node", "n3")  # waiting again, its GPUs on n3 given back: it held GPUs there
    assert "e1" not in _ids(lab, "--node", "n2")
