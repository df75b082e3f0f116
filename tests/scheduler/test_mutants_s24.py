"""Two rules of the live pass no test pinned (a mutation run changed them and every test still passed).

While jobs are being stopped for the job preemption makes room for, it also waits for the running jobs of any
priority that end within the grace period or by the last of those stops (docs/scheduler.md, Preemption): it waits
until the later of the two, so stopping yet another job for it is never needed. And `learned_config` counts a
failed job as having run its course when it ran 99 % of its walltime or more (the executor stopped it there).
"""

from __future__ import annotations

import dataclasses

import pytest
from helpers import nodes, pending, running

from factoryctl.model.jobs import Job, JobSpec, JobState, StopRequest
from factoryctl.scheduler.decide import learned_config, schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig

CONFIG = SchedulerConfig(preemption=True, grace_s=120)
VIP = pending("vip", 16, 50, priority=10, walltime_s=3600)
#: A job of no priority running on for days, which vip could stop but never needs to.
IDLE = running("idle", [("n2", 8)], 0, 10**6, priority=0)


@pytest.mark.parametrize(
    ("stop_grace_s", "peer_ends_at"),
    [
        (120, 1125),  # the stop ends at 1120; the peer ends after it, within the grace period (now + 120 = 1130)
        (600, 1500),  # a stop asked with a longer grace ends at 1600; the peer ends after the grace, before it
    ],
)
def test_a_claim_under_way_waits_for_the_jobs_ending_by_the_later_of_its_stops_and_the_grace(
    stop_grace_s: float, peer_ends_at: float
) -> None:
    """vip waits for `low` (being stopped for it) and its equal `peer`: neither the earlier end bounds what it waits for."""
    low = dataclasses.replace(
        running("low", [("n0", 8)], 0, 10**6, priority=0), stopping=StopRequest("vip", 1000, stop_grace_s)
    )
    peer = running("peer", [("n1", 8)], 0, peer_ends_at, priority=10)
    for claimer in ("vip", None):
        decisions = schedule(nodes(3), [low, peer, IDLE, VIP], 1010, CONFIG, claimer=claimer)
        assert (decisions.starts, decisions.preemptions, decisions.claimer) == ((), (), "vip")
        (wait,) = decisions.waits
        assert (wait.reserved_start, wait.reserved_nodes) == (max(peer_ends_at, 1000 + stop_grace_s), ("n0", "n1"))
        assert wait.reason.endswith("waiting for low to stop and for peer, ending within the grace period")


def _ran(job_id: str, state: JobState, ran: float, ended_at: float) -> Job:
    spec = JobSpec(num_gpus=1, walltime_s=200)
    return Job(job_id, spec, 0, state, started_at=ended_at - ran, ended_at=ended_at)


@pytest.mark.parametrize(
    ("failed_ran", "learned"),
    [
        (198.0, 0.99),  # 99 % of its 200 s walltime: stopped by it, it tells how long the work needed
        (200.0, 1.0),
        (197.8, 0.5),  # 98.9 %: it failed on its own just before; it says nothing, the last success (half) counts
        (100.0, 0.5),
    ],
)
def test_a_failed_job_counts_from_99_percent_of_its_walltime(failed_ran: float, learned: float) -> None:
    config = dataclasses.replace(POLICIES["default"], walltime_use_window=1)  # the share of the last job counted
    jobs = [_ran("half", JobState.SUCCEEDED, 100.0, -500.0), _ran("failed", JobState.FAILED, failed_ran, -100.0)]
    assert learned_config(config, jobs).walltime_use == learned
