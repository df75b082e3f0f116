"""Each rank's GPUs and environment: what torchrun-style launchers read (DESIGN.md, Job fields)."""

from __future__ import annotations

from factoryctl.jobs.rank_env import (
    MASTER_PORT_BASE,
    MASTER_PORT_SPAN,
    busy_gpus,
    choose_gpus,
    launch_id,
    master_port,
    rank_environment,
)
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank


def test_rank_environment_names_the_gang_and_this_rank() -> None:
    alloc = (GpuAllocation("n1", 6), GpuAllocation("n2", 6))
    spec = JobSpec(12, gpus_per_node=6, env=(("NCCL_DEBUG", "INFO"), ("RANK", "mine")))
    job = Job("j1", spec, 0.0, restarts=2)
    env = rank_environment(job, alloc, 1, (2, 3, 4, 5, 6, 7), "10.0.0.1")
    assert env["NCCL_DEBUG"] == "INFO"
    assert env["RANK"] == "1"
    assert env["NODE_RANK"] == "1"
    assert env["WORLD_SIZE"] == env["NNODES"] == "2"
    assert env["NPROC_PER_NODE"] == "6"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3,4,5,6,7"
    assert env["MASTER_ADDR"] == "10.0.0.1"
    assert env["FACTORY_JOB_ID"] == "j1"
    assert env["FACTORY_RESTART_COUNT"] == "2"
    assert MASTER_PORT_BASE <= int(env["MASTER_PORT"]) < MASTER_PORT_BASE + MASTER_PORT_SPAN
    assert master_port("j1") == master_port("j1") != master_port("j2")


def test_gpus_held_by_active_jobs_are_not_given_again() -> None:
    running = Job("a", JobSpec(3), 0.0, JobState.RUNNING, ranks=(Rank(0, "n1", gpus=(0, 1, 2)),))
    ended = Job("b", JobSpec(2), 0.0, JobState.SUCCEEDED, ranks=(Rank(0, "n1", gpus=(3, 4)),))
    busy = busy_gpus([running, ended])
    assert busy == {"n1": {0, 1, 2}}
    indexes = {"n1": tuple(range(8)), "n2": tuple(range(8))}
    assert choose_gpus((GpuAllocation("n1", 4), GpuAllocation("n2", 8)), indexes, busy) == [
        (3, 4, 5, 6),
        tuple(range(8)),
    ]
    assert choose_gpus((GpuAllocation("n1", 6),), indexes, busy) is None


def test_each_launch_of_a_job_has_its_own_run_id() -> None:
    job = Job("j1", JobSpec(1), 0.0, started_at=1_800_000_000.25)
    assert launch_id(job) == f"j1.{1_800_000_000_250:x}"
    assert launch_id(job.evolve(started_at=1_800_000_001.0)) != launch_id(job)
