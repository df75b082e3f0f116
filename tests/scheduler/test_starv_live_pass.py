"""The live pass's starvation guard (no `QueueIndex`): the same starving jobs as sorting the whole queue, cheaper.

The live pass used to sort every queued walltime each pass for the floor's median, even when nobody could be
starving yet (6-10% of a 10,000-job `schedule()`). It now tests the oldest submission against the drain-time term
first, which the threshold never undercuts, and takes the median only past it.
"""

from __future__ import annotations

import dataclasses
import statistics

import pytest
from helpers import nodes, pending, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sched_properties import cluster_state

from factoryctl.model.jobs import Job
from factoryctl.scheduler import starvation
from factoryctl.scheduler.decide import _build, schedule
from factoryctl.scheduler.gangs import gpu_seconds
from factoryctl.scheduler.passdata import Candidate
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.starvation import StarvationGuard, age_order, is_small, small_threshold, starve_threshold


def _sorting_everything(queue: list[Candidate], guard: StarvationGuard, held: set[str], room: int) -> list[str]:
    """The starving jobs by definition: the thresholds from every hostable job's walltime, sorted; oldest first."""
    fm, config = guard.fm, guard.config
    hostable = [job for job in queue if fm.hostable(job.nodes, job.gpus, job.allowed)]
    walltimes = sorted(job.walltime for job in hostable)
    median = statistics.median(walltimes) if walltimes else None
    queued = gpu_seconds((job.num_gpus, job.walltime) for job in hostable)
    threshold = starve_threshold(config, queued, sum(fm.totals), median)
    small = small_threshold(config, threshold, queued, sum(fm.totals))
    waited = [
        job
        for job in sorted(queue, key=age_order)
        if job.submitted_at <= guard.now - (small if is_small(job, fm) else threshold)
    ]
    return [job.id for job in waited if job.id not in held and guard.can_run_now(job)][:room]


def _pinned(jobs: list[Job], pins: list[int]) -> list[Job]:
    """Some queued jobs constrained to node n0 (a job that node cannot hold counts in no sum)."""
    picked = {f"p{pin}" for pin in pins}
    return [
        dataclasses.replace(job, spec=dataclasses.replace(job.spec, nodes=("n0",))) if job.id in picked else job
        for job in jobs
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=cluster_state(),
    pins=st.lists(st.integers(0, 11), max_size=3),
    floor=st.sampled_from([0.0, 600.0, 43200.0]),
    walltime_factor=st.sampled_from([0.0, 0.5]),
    drain=st.sampled_from([0.0, 0.01, 0.5, 3.0]),
    small=st.sampled_from([0.0, 1.0, 4.0]),
    use=st.sampled_from([1.0, 0.25, 0.0]),
    protect=st.sampled_from([1, 2, None]),
    now=st.sampled_from([100.0, 1000.0, 3000.0, 20000.0]),
    held_picks=st.lists(st.integers(0, 11), max_size=3),
)
def test_the_live_guard_finds_the_jobs_a_sort_of_the_whole_queue_finds(
    state, pins, floor, walltime_factor, drain, small, use, protect, now, held_picks
):
    config = SchedulerConfig(
        starve_after_s=floor,
        starve_walltime_factor=walltime_factor,
        starve_drain_factor=drain,
        starve_small_drain_factor=small,
        walltime_use=use,
        protect_oldest=protect,
    )
    cluster, jobs = state
    fm, _, queue = _build(cluster, _pinned(jobs, pins), now, config)
    guard = StarvationGuard(now, config, fm, None)
    held = {f"p{pick}" for pick in held_picks}
    room = len(queue) if protect is None else protect
    found = [job.id for job in starvation._newly_starving(queue, guard, held, room, None)]
    assert found == _sorting_everything(queue, guard, held, room)


@pytest.fixture
def medians(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the live pass's median computations (one sort of the queued walltimes each)."""
    calls: list[int] = []
    real = starvation.median_of_sorted

    def counted(values):
        calls.append(len(values))
        return real(values)

    monkeypatch.setattr(starvation, "median_of_sorted", counted)
    return calls


def test_a_live_pass_sorts_no_walltimes_while_nobody_waited_the_drain_time(medians):
    cluster = nodes(2)
    queue = [pending(f"q{k}", 8, 10.0 * k, walltime_s=3600) for k in range(200)]
    jobs = [running("r", [("n0", 8), ("n1", 8)], 0, 7200), *queue]
    # 200 jobs x 8 GPUs x 3,600 s over 16 GPUs, halved: a drain time of 180,000 s; the oldest waited 5,000 s.
    decisions = schedule(cluster, jobs, 5000.0, POLICIES["default"])
    assert decisions.protected == frozenset()
    assert medians == []
    # Past the drain time the floor's median is needed, and taken once, over the 200 walltimes.
    late = schedule(cluster, jobs, 200000.0, POLICIES["default"])
    assert late.protected == frozenset({"q0"})
    assert medians == [200]
