"""`sched explain` says what the scheduler knows: a running job's walltime end, and why a requeued job waits again.

The replay knows each job's real end, a live scheduler only its walltime: the reservation of a job behind it counts
from the walltime, so the running job's reason must too, or the two contradict each other. A job stopped by
preemption and queued again says so, rather than only what it waits for.
"""

from __future__ import annotations

import dataclasses

from test_sched_explain import _priority_trace

from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob, parse_trace

_WALLTIME_TRACE = "job_id,submit_time_s,duration_s,num_gpus,walltime_s\nlong,0,100,8,1000\nbig,10,50,16,60\n"


def _explained(policy: str, at: float) -> dict[str, tuple[str, float | None]]:
    jobs = parse_trace(_WALLTIME_TRACE.splitlines(keepends=True))
    found = explain_at(jobs, cluster_nodes(2, 8), POLICIES[policy], at).jobs
    return {job.job_id: (job.reason, job.reserved_start_s) for job in found}


def test_a_running_jobs_end_is_its_walltimes_as_the_reservation_behind_it():
    shown = _explained("default", 50.0)
    assert shown["long"][0] == (
        "running on n001:8 since 0 s (50 s ago); walltime ends at 1000 s (the trace's run ends at 100 s)"
    )
    assert shown["big"][1] == 1000.0  # the reservation counts from the walltime's end, as the reason now says


def test_a_policy_planning_with_exact_durations_says_the_one_end_it_knows():
    shown = _explained("easy", 50.0)
    assert shown["long"][0] == "running on n001:8 since 0 s (50 s ago); ends at 100 s"
    assert shown["big"][1] == 100.0


def test_a_requeued_job_says_when_and_by_whom_it_was_preempted():
    jobs = [TraceJob("low", 0, 1000, 8, None, 0, 1000), TraceJob("vip", 100, 500, 8, None, 5, 500)]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=50.0)
    (low,) = explain_at(jobs, cluster_nodes(1, 8), config, 400.0, ["low"]).jobs
    assert low.state == "PENDING"
    assert low.reason == (
        "preempted by job vip at 150 s (~4 min ago) and queued again; waiting for 1 node with 8 free GPUs (0 now)"
    )
    (before,) = explain_at(jobs, cluster_nodes(1, 8), config, 50.0, ["low"]).jobs
    assert "preempted" not in before.reason


def test_every_requeued_job_on_a_busy_trace_names_its_stop_and_a_job_starting_then():
    jobs = _priority_trace()
    cluster = cluster_nodes(3, 8)
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=600.0)
    records = simulate(jobs, cluster, config).records
    stops = {r.end_s for r in records if r.end_s < max(s.end_s for s in records if s.job_id == r.job_id)}
    assert stops  # the trace exercises preemption
    priority = {job.job_id: job.priority for job in jobs}
    requeued_seen = 0
    for at in sorted(stops | {stop + 1.0 for stop in stops}):
        for job in explain_at(jobs, cluster, config, at).jobs:
            earlier = [r for r in records if r.job_id == job.job_id and r.end_s <= at]
            if job.state != "PENDING":
                continue
            if not earlier:  # never ran: nothing to say about preemption
                assert not job.reason.startswith("preempted"), (at, job)
                continue
            requeued_seen += 1
            stop = earlier[-1].end_s
            assert job.reason.startswith(("preempted by job ", "preempted at ")), (at, job)
            assert f" at {stop:.0f} s (" in job.reason.split(" and queued again; ")[0]
            if job.reason.startswith("preempted by job "):
                by = job.reason.removeprefix("preempted by job ").split(" at ")[0]
                assert priority[by] > priority[job.job_id]
                assert any(r.job_id == by and r.start_s == stop for r in records), (at, job)
    assert requeued_seen > 0
