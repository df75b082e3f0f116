"""Hypothesis properties of the scheduler: checked with code that shares nothing with the scheduler's own checks."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, SchedNode
from factoryctl.scheduler import simulate as simulate_module
from factoryctl.scheduler.decide import schedule
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLICY_NAMES = sorted(POLICIES)


@st.composite
def cluster_state(draw):
    """Nodes (some unschedulable), running jobs that legally fit, and a queue."""
    gpus = draw(st.sampled_from([2, 4, 8]))
    count = draw(st.integers(1, 6))
    nodes = [
        SchedNode(
            f"n{i}",
            gpus,
            rack=f"r{i % 2}",
            drained=draw(st.booleans()) and i > 0 and draw(st.booleans()),
        )
        for i in range(count)
    ]
    free = {n.name: n.gpus for n in nodes if n.schedulable}
    jobs: list[Job] = []
    for j in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(sorted(free))) if free else None
        if name is None or free[name] == 0:
            continue
        take = draw(st.integers(1, free[name]))
        free[name] -= take
        wall = draw(st.integers(1, 100)) * 60.0
        jobs.append(
            Job(f"r{j}", JobSpec(take, walltime_s=wall), 0.0, JobState.RUNNING, started_at=0.0,
                allocation=(GpuAllocation(name, take),))
        )  # fmt: skip
    for j in range(draw(st.integers(1, 12))):
        size = draw(st.integers(1, gpus * 3))
        if size > gpus and size % gpus:
            size = gpus * (size // gpus)
        spec = JobSpec(
            size,
            walltime_s=draw(st.integers(1, 200)) * 60.0,
            priority=draw(st.integers(0, 2)),
        )
        jobs.append(Job(f"p{j}", spec, float(draw(st.integers(0, 100)))))
    return nodes, jobs


def _usage_at(when, entries):
    used = defaultdict(int)
    for start, end, alloc in entries:
        if start <= when < end:
            for node, gpus in alloc:
                used[node] += gpus
    return used


@SETTINGS
@given(state=cluster_state(), policy=st.sampled_from(POLICY_NAMES))
def test_pass_never_double_books_and_starts_whole_gangs(state, policy):
    nodes, jobs = state
    now = 100.0
    decisions = schedule(nodes, jobs, now, POLICIES[policy])
    capacity = {n.name: n.gpus for n in nodes if n.schedulable}
    by_id = {j.id: j for j in jobs}
    used = defaultdict(int)
    for job in jobs:
        for a in job.allocation:
            used[a.node] += a.gpus
    for start in decisions.starts:
        job = by_id[start.job_id]
        assert job.state is JobState.PENDING
        assert start.placement.num_gpus == job.num_gpus
        assert len(set(start.placement.nodes)) == len(start.placement.nodes)
        for a in start.placement.allocation:
            assert a.node in capacity
            used[a.node] += a.gpus
    for node, gpus in used.items():
        if node in capacity:
            assert gpus <= capacity[node]
    decided = {s.job_id for s in decisions.starts} | {w.job_id for w in decisions.waits}
    assert decided == {j.id for j in jobs if j.state.waiting}


@SETTINGS
@given(state=cluster_state(), policy=st.sampled_from(["easy", "default"]), drain=st.sampled_from([0.0, 0.5]))
def test_backfilled_jobs_never_delay_a_reservation(state, policy, drain):
    nodes, jobs = state
    now = 100.0
    config = POLICIES[policy]
    if policy == "default":
        config = type(config)(starve_after_s=0.0, reservations=3, protect_oldest=None, starve_drain_factor=drain)
    decisions = schedule(nodes, jobs, now, config)
    _assert_reservations_keep_room(
        nodes, jobs, decisions, now, lambda job: max(job.started_at + job.spec.walltime, now)
    )


@SETTINGS
@given(state=cluster_state(), starving=st.booleans(), grace=st.sampled_from([0.0, 300.0, 3000.0]))
def test_backfilled_jobs_never_delay_a_preempting_jobs_reservation(state, starving, grace):
    """With preemption the first job short of room holds a reservation from when its victims and the jobs it waits
    for have freed their GPUs; the stopped jobs end at the end of the grace period, the others at their walltime."""
    nodes, jobs = state
    now = 100.0
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=grace)
    if starving:
        config = dataclasses.replace(config, starve_after_s=0.0, reservations=3, protect_oldest=None)
    decisions = schedule(nodes, jobs, now, config)
    stopped = {p.job_id for p in decisions.preemptions}

    def ends(job):
        return now + grace if job.id in stopped else max(job.started_at + job.spec.walltime, now)

    _assert_reservations_keep_room(nodes, jobs, decisions, now, ends)


def _assert_reservations_keep_room(nodes, jobs, decisions, now, ends):
    """At every reserved start the reserved nodes hold the job: running jobs (ending at `ends(job)`), the pass's
    starts (at their walltime) and the other reservations leave room for it."""
    capacity = {n.name: n.gpus for n in nodes if n.schedulable}
    by_id = {j.id: j for j in jobs}
    entries = [(j.started_at, ends(j), [(a.node, a.gpus) for a in j.allocation]) for j in jobs if j.state.active]
    for start in decisions.starts:
        wall = by_id[start.job_id].spec.walltime
        entries.append((now, now + wall, [(a.node, a.gpus) for a in start.placement.allocation]))
    reserved = [w for w in decisions.waits if w.reserved_start is not None]
    for w in reserved:
        job = by_id[w.job_id]
        per_node = job.num_gpus // len(w.reserved_nodes)
        entries.append(
            (w.reserved_start, w.reserved_start + job.spec.walltime, [(n, per_node) for n in w.reserved_nodes])
        )
    for w in reserved:
        used = _usage_at(w.reserved_start, entries)
        for node in w.reserved_nodes:
            assert used[node] <= capacity[node], f"{w.job_id} reserved on {node} but it is full at {w.reserved_start}"


@st.composite
def small_trace(draw):
    count = draw(st.integers(1, 25))
    jobs = []
    for i in range(count):
        gpus = draw(st.sampled_from([1, 1, 2, 4, 8, 16]))
        jobs.append(
            TraceJob(f"j{i}", float(draw(st.integers(0, 5000))), float(draw(st.integers(0, 3000))), gpus, None,
                     draw(st.integers(0, 1)), 0.0)
        )  # fmt: skip
    return [TraceJob(j.job_id, j.submit_s, j.duration_s, j.num_gpus, None, j.priority, j.duration_s) for j in jobs]


@SETTINGS
@given(trace=small_trace(), count=st.integers(1, 4), policy=st.sampled_from(POLICY_NAMES))
def test_every_job_of_a_finite_trace_runs_after_its_submission(trace, count, policy):
    result = simulate(trace, cluster_nodes(count, 8), POLICIES[policy])
    ran = {r.job_id for r in result.records}
    rejected = {r.job_id for r in result.rejected}
    assert ran | rejected == {j.job_id for j in trace}
    assert not ran & rejected
    assert rejected == {j.job_id for j in trace if -(-j.num_gpus // 8) > count}
    submit = {j.job_id: j.submit_s for j in trace}
    for record in result.records:
        assert record.start_s >= submit[record.job_id]
        assert sum(g for _, g in record.allocation) == record.num_gpus
    events = []
    for record in result.records:
        for node, gpus in record.allocation:
            events += [(record.start_s, 1, node, gpus), (record.end_s, 0, node, -gpus)]
    used = defaultdict(int)
    for _, _, node, delta in sorted(events):
        used[node] += delta
        assert used[node] <= 8


@pytest.mark.parametrize("policy", ["easy", "default"])
@SETTINGS
@given(trace=small_trace(), count=st.integers(2, 4))
def test_reserved_job_starts_no_later_than_its_first_reservation(policy, trace, count):
    first_reservation: dict[str, float] = {}
    real_plan = simulate_module.plan

    def spying_plan(*args, **kwargs):
        outcome = real_plan(*args, **kwargs)
        for reservation in outcome.reservations:
            first_reservation.setdefault(reservation.job.id, reservation.start)
        return outcome

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulate_module, "plan", spying_plan)
        config = POLICIES[policy]
        if policy == "default":
            config = dataclasses.replace(config, starve_after_s=600.0)
        result = simulate(trace, cluster_nodes(count, 8), config)
    for record in result.records:
        if record.job_id in first_reservation:
            assert record.start_s <= first_reservation[record.job_id]
