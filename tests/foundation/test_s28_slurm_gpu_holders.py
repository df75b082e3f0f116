"""`gpus` names the job holding each GPU and `nodes` counts each node's GPUs used and free, from the store's jobs.

Slurm users see which job holds a GPU (`squeue -w`, `sinfo`'s allocated GRES); here the store's running jobs' rank
GPUs say it, on a simulated lab whose nodes answer for themselves. A store that cannot be read leaves it unknown:
null, said on stderr, never "no job" or "free".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from damaged_store import damage

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.store.sqlite import Store

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n[1-2]: {{transport: local, sim: {{profile: h100-sxm, gpus: 4, seed: 3}}}}
"""


@pytest.fixture
def lab(tmp_path: Path, cli: Any) -> Any:
    """`factoryctl -c factory.yaml ...` on two simulated 4-GPU nodes; its store holds a running job on n1 0-1, n2 3."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    (tmp_path / "state").mkdir()
    spec = JobSpec(3, name="train", user="alice", command=("sleep", "60"))
    allocation = (GpuAllocation("n1", 2), GpuAllocation("n2", 1))
    ranks = (Rank(0, "n1", pid=41, gpus=(0, 1)), Rank(1, "n2", pid=42, gpus=(3,)))
    running = Job("r1x", spec, time.time() - 60, JobState.RUNNING, allocation=allocation, ranks=ranks)
    ended = Job(
        "e1x", spec, time.time() - 60, JobState.FAILED, allocation=allocation, ranks=ranks, ended_at=time.time()
    )
    store = Store(tmp_path / "state" / "factory.db")
    try:
        store.add_job(running)
        store.add_job(ended)  # ended: its GPUs are held by no one now
    finally:
        store.close()

    def run(*args: str) -> Any:
        return cli("-c", str(config), *args)

    run.store_path = tmp_path / "state" / "factory.db"  # type: ignore[attr-defined]
    return run


def test_gpus_json_and_wide_name_the_job_holding_each_gpu(lab: Any) -> None:
    done = lab("gpus", "-o", "json")
    assert done.exit_code == 0, done.stderr
    held = {(i["node"], i["index"]): i["job_id"] for i in done.json()["items"]}
    assert held == {("n1", 0): "r1x", ("n1", 1): "r1x", ("n1", 2): None, ("n1", 3): None} | {
        ("n2", 0): None,
        ("n2", 1): None,
        ("n2", 2): None,
        ("n2", 3): "r1x",
    }
    assert all("job_id" not in i["null_reasons"] for i in done.json()["items"])  # known: no job, not unknown
    wide = lab("gpus", "n1", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["JOB", "UUID"]
    assert [line.split()[-2] for line in wide[1:]] == ["r1x", "r1x", "-", "-"]
    assert "JOB" not in lab("gpus", "n1").stdout.splitlines()[0].split()  # the plain table keeps its width
    assert lab("gpus", "n1", "-o", "csv").stdout.splitlines()[0].endswith(",xid_events,job_id")


def test_nodes_count_the_gpus_jobs_hold_and_those_free(lab: Any) -> None:
    done = lab("nodes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    assert [(i["node"], i["gpus"], i["gpus_used"], i["gpus_free"]) for i in done.json()["items"]] == [
        ("n1", 4, 2, 2),
        ("n2", 4, 1, 3),
    ]
    table = lab("nodes").stdout.splitlines()
    header = table[0].split()
    assert header[4:7] == ["GPUS", "USED", "FREE"]
    assert [line.split()[4:7] for line in table[1:]] == [["4", "2", "2"], ["4", "1", "3"]]


def test_an_unreadable_store_leaves_holders_unknown_and_says_so(lab: Any) -> None:
    damage(lab.store_path, "job")
    gpus = lab("gpus", "n1", "-o", "json")
    assert gpus.exit_code == 0, gpus.stderr  # the GPUs answered: only who holds them is unknown
    items = gpus.json()["items"]
    assert [(i["job_id"], i["null_reasons"].get("job_id")) for i in items] == [(None, "store unreadable")] * 4
    assert gpus.stderr.count("Which job holds each GPU is unknown") == 1
    assert "damaged" in gpus.stderr
    nodes = lab("nodes", "-o", "json")
    assert [(i["gpus"], i["gpus_used"], i["gpus_free"]) for i in nodes.json()["items"]] == [(4, None, None)] * 2
    assert "Which GPUs jobs hold is unknown (USED and FREE -)" in nodes.stderr
