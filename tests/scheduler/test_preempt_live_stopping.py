"""The live `schedule()` while the executor stops jobs for a preempting one (`Job.stopping`).

Without the state, a pass in the grace period saw the victims still running, proposed them again and moved the
claimer's reservation to the end of a new grace period. Now a job being stopped is never proposed again, its GPUs
count as free at its stop for the job it is stopped for (and for the look-ahead), that job keeps its reservation
where the stops put it, and further victims are proposed only if they are still needed. It keeps it (or starts
sooner) when its victims end on their own before their stop, though only `claimer=` says it claims then.
"""

from __future__ import annotations

import dataclasses

import pytest
from helpers import nodes, pending, running
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factoryctl.errors import UsageError
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, StopRequest
from factoryctl.scheduler.decide import Decisions, schedule
from factoryctl.scheduler.policy import POLICIES

GRACE_S = 300.0
PREEMPTIVE = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=GRACE_S)
NOW = 900.0


def stopped(decisions: Decisions, jobs: list[Job], now: float) -> list[Job]:
    """`jobs` as the executor leaves them after carrying out the pass's preemptions at `now`."""
    requests = {p.job_id: p.stop_request(now) for p in decisions.preemptions}
    return [job.evolve(stopping=requests[job.id]) if job.id in requests else job for job in jobs]


def wait_of(decisions: Decisions, job_id: str) -> tuple[float | None, tuple[str, ...], str]:
    wait = next(w for w in decisions.waits if w.job_id == job_id)
    return wait.reserved_start, wait.reserved_nodes, wait.reason


def test_a_stop_request_says_when_the_gpus_free_and_has_its_json_form() -> None:
    stop = StopRequest("vip", 900.0, 300.0)
    assert stop.stops_at == 1200.0
    assert stop.as_json() == {
        "for_job": "vip",
        "requested_at": "1970-01-01T00:15:00.000Z",
        "grace_s": 300.0,
        "stops_at": "1970-01-01T00:20:00.000Z",
    }
    with pytest.raises(UsageError, match="grace_s must not be negative"):
        StopRequest("vip", 900.0, -1.0)


def test_a_job_being_stopped_is_not_proposed_again_and_the_reservation_stays() -> None:
    jobs = [
        running("young", [("n0", 8)], 500, 86_400),
        pending("vip", 16, NOW, priority=10, walltime_s=50),
        pending("long", 8, NOW, walltime_s=5000),
    ]
    first = schedule(nodes(2), jobs, NOW, PREEMPTIVE)
    assert [(p.job_id, p.for_job) for p in first.preemptions] == [("young", "vip")]
    assert wait_of(first, "vip")[:2] == (NOW + GRACE_S, ("n0", "n1"))
    jobs = stopped(first, jobs, NOW)
    for later in (NOW + 100, NOW + 299):
        again = schedule(nodes(2), jobs, later, PREEMPTIVE, claimer=first.claimer)
        assert again.preemptions == ()
        assert (again.starts, again.claimer) == ((), "vip")
        start, where, reason = wait_of(again, "vip")
        assert (start, where) == (NOW + GRACE_S, ("n0", "n1"))  # not moved to later + grace
        assert reason.endswith("on n0, n1: waiting for young to stop")
        assert wait_of(again, "long")[2].endswith("starting it now would delay a reserved job")


def test_further_victims_are_proposed_only_when_the_stopping_ones_no_longer_make_room() -> None:
    """vip needs 3 nodes: b and c are stopped for it; then n3 is drained and a is needed as well."""
    jobs = [
        running("a", [("n0", 8)], 0, 86_400),
        running("b", [("n1", 8)], 10, 86_400),
        running("c", [("n2", 8)], 20, 86_400),
        pending("vip", 24, NOW, priority=10, walltime_s=50),
    ]
    first = schedule(nodes(4), jobs, NOW, PREEMPTIVE)
    assert [p.job_id for p in first.preemptions] == ["c", "b"]
    jobs = stopped(first, jobs, NOW)
    same = schedule(nodes(4), jobs, NOW + 60, PREEMPTIVE, claimer="vip")
    assert (same.preemptions, wait_of(same, "vip")[0]) == ((), NOW + GRACE_S)
    cluster = [*nodes(3), nodes(4, drained=True)[3]]
    short = schedule(cluster, jobs, NOW + 60, PREEMPTIVE, claimer="vip")
    assert [p.job_id for p in short.preemptions] == ["a"]  # b and c are not proposed again
    start, where, reason = wait_of(short, "vip")
    assert (start, where) == (NOW + 60 + GRACE_S, ("n0", "n1", "n2"))
    assert reason.endswith(": preempting a (and waiting for b, c to stop)")


def test_a_job_stopped_for_a_job_that_left_the_queue_is_waited_for_until_its_stop_never_stopped_again() -> None:
    """`gone` left the queue (cancelled); `low` is still being stopped for it and frees n0 at 1100 s."""
    low = running("low", [("n0", 8)], 0, 86_400).evolve(stopping=StopRequest("gone", NOW - 100, GRACE_S))
    decisions = schedule(nodes(1), [low, pending("vip", 8, 0.0, priority=10, walltime_s=50)], NOW, PREEMPTIVE)
    assert (decisions.preemptions, decisions.claimer) == ((), "vip")
    start, where, reason = wait_of(decisions, "vip")
    assert (start, where) == (NOW - 100 + GRACE_S, ("n0",))  # its stop, not its walltime
    assert reason.endswith("on n0: waiting for low to stop")


@pytest.mark.parametrize("requested_at", [NOW - 100, NOW - 1000])
def test_a_stop_left_without_its_claimer_spares_stopping_another_job(requested_at: float) -> None:
    """`vip` left the queue (cancelled, or started elsewhere): `other` waits for young's stop, not for old's.

    Had young's GPUs not counted, `other` would preempt `old` and wait for the end of a new grace period (1200 s),
    though n0 frees within the grace period (at 1100 s, or now when the stop is past).
    """
    young = running("young", [("n0", 8)], 500, 86_400).evolve(stopping=StopRequest("vip", requested_at, GRACE_S))
    jobs = [young, running("old", [("n1", 8)], 0, 86_400), pending("other", 8, NOW, priority=10, walltime_s=50)]
    decisions = schedule(nodes(2), jobs, NOW, PREEMPTIVE)
    assert (decisions.preemptions, decisions.claimer) == ((), "other")
    start, where, _ = wait_of(decisions, "other")
    assert (start, where) == (max(NOW, requested_at + GRACE_S), ("n0",))


def peer_backfilled_while_low_stops() -> list[Job]:
    """low (n0) is being stopped for vip until 1200 s; peer (as high as vip) took n1 until 1150 s; old runs on n2."""
    jobs = [
        running("old", [("n2", 8)], 0, 86_400),
        running("low", [("n0", 8)], 500, 86_400),
        pending("vip", 16, NOW, priority=10, walltime_s=50),
    ]
    first = schedule(nodes(3), jobs, NOW, PREEMPTIVE)
    assert ([p.job_id for p in first.preemptions], wait_of(first, "vip")[:2]) == (["low"], (1200.0, ("n0", "n1")))
    jobs = [*stopped(first, jobs, NOW), pending("peer", 8, 950.0, priority=10, walltime_s=200)]
    arrival = schedule(nodes(3), jobs, 950.0, PREEMPTIVE, claimer="vip")
    assert [(s.job_id, s.placement.nodes) for s in arrival.starts] == [("peer", ("n1",))]
    jobs[-1] = running("peer", [("n1", 8)], 950.0, 200, priority=10)
    return jobs


def test_a_higher_priority_job_backfilled_on_the_claimers_gpus_is_waited_for() -> None:
    """Were peer not counted, vip would stop `old` as well and move its reservation to 1300 s."""
    later = schedule(nodes(3), peer_backfilled_while_low_stops(), 1000.0, PREEMPTIVE, claimer="vip")
    assert later.preemptions == ()
    start, where, reason = wait_of(later, "vip")
    assert (start, where) == (1200.0, ("n0", "n1"))
    assert reason.endswith("waiting for low to stop and for peer, ending within the grace period")


@pytest.mark.parametrize("ended", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, None])
def test_a_claim_whose_victims_ended_on_their_own_keeps_its_start_and_stops_nobody_else(ended: JobState | None) -> None:
    """low ends at 1000 s, before its stop: no job is marked for vip any more, yet it still waits for peer.

    It used to be planned afresh: peer (its priority) was not waited for, so it stopped `old` and moved to 1300 s.
    (None: the executor no longer passes the finished job at all.)
    """
    jobs = peer_backfilled_while_low_stops()
    low = jobs[1]
    jobs[1:2] = [] if ended is None else [low.evolve(state=ended, ended_at=1000.0)]
    later = schedule(nodes(3), jobs, 1000.0, PREEMPTIVE, claimer="vip")
    assert (later.starts, later.preemptions, later.claimer) == ((), (), "vip")
    start, where, reason = wait_of(later, "vip")
    assert (start, where) == (1150.0, ("n0", "n1"))  # peer's end: no later than the 1200 s it was given
    assert reason.endswith("on n0, n1: waiting for peer, ending within the grace period")
    at_peers_end = schedule(nodes(3), [job for job in jobs if job.id != "peer"], 1150.0, PREEMPTIVE, claimer="vip")
    assert [(s.job_id, s.placement.nodes) for s in at_peers_end.starts] == [("vip", ("n0", "n1"))]


def test_live_executor_marks_a_preempted_job_and_its_json_shows_it() -> None:
    job = running("young", [("n0", 8)], 500, 86_400)
    assert job.as_json()["stopping"] is None
    (proposal,) = schedule(nodes(1), [job, pending("vip", 8, NOW, priority=1)], NOW, PREEMPTIVE).preemptions
    marked = job.evolve(stopping=proposal.stop_request(NOW))
    assert marked.state is JobState.RUNNING
    assert marked.as_json()["stopping"]["stops_at"] == "1970-01-01T00:20:00.000Z"


# A live executor in miniature, for the property: a job runs its run time (its walltime, or less: it ends on its
# own), a preempted job is stopped at the end of its grace period unless it ended before, and is requeued; a pass
# runs at every arrival, end and stop. Ending before its stop, a victim leaves no job marked for its claimer.


def _place(job: Job, start: float, allocation: tuple[GpuAllocation, ...]) -> Job:
    return job.evolve(state=JobState.RUNNING, started_at=start, allocation=allocation)


def _ends_at(job: Job, runs: dict[str, float]) -> float:
    assert job.started_at is not None
    return job.started_at + runs[job.id]


def _due(jobs: dict[str, Job], runs: dict[str, float], now: float) -> None:
    """End the jobs whose run time ran out by `now` and requeue those whose stop came."""
    for job in list(jobs.values()):
        if not job.state.active:
            continue
        if _ends_at(job, runs) <= now:
            del jobs[job.id]
        elif job.stopping is not None and job.stopping.stops_at <= now:
            jobs[job.id] = Job(job.id, job.spec, job.submitted_at)


def _next_event(jobs: dict[str, Job], runs: dict[str, float], arrivals: list[Job]) -> float | None:
    times = [job.submitted_at for job in arrivals[:1]]
    for job in jobs.values():
        if job.state.active:
            times.append(_ends_at(job, runs))
            if job.stopping is not None:
                times.append(job.stopping.stops_at)
    return min(times, default=None)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Job], dict[str, float]]:
    """Long low-priority jobs first, then a mix arriving while they run (some of higher priority); their run times.

    Most jobs run their whole walltime; some end on their own well before it (a victim may then end in its grace).
    """
    out = []
    for i in range(draw(st.integers(1, 4))):
        walltime = float(draw(st.sampled_from([1000, 5000])))
        spec = JobSpec(draw(st.sampled_from([4, 8, 8, 16])), walltime_s=walltime)
        out.append(Job(f"low{i}", spec, float(draw(st.integers(0, 50)))))
    for i in range(draw(st.integers(1, 10))):
        gpus = draw(st.sampled_from([1, 4, 8, 8, 16]))
        walltime = float(draw(st.sampled_from([40, 200, 1000, 5000])))
        submit = float(draw(st.integers(60, 2000)))
        out.append(Job(f"j{i}", JobSpec(gpus, priority=draw(st.integers(0, 2)), walltime_s=walltime), submit))
    runs = {job.id: job.spec.walltime * draw(st.sampled_from([1.0, 1.0, 0.9, 0.5, 0.05])) for job in out}
    return sorted(out, key=lambda job: job.submitted_at), runs


def _trace(*rows: tuple[str, int, int, float, float, float]) -> tuple[list[Job], dict[str, float]]:
    """`arrivals` from (id, GPUs, priority, walltime, submitted at, run time) rows."""
    jobs = [Job(job_id, JobSpec(gpus, priority=prio, walltime_s=wall), at) for job_id, gpus, prio, wall, at, _ in rows]
    return jobs, {row[0]: row[5] for row in rows}


#: j0 stops low1 for n1 and n2 (start 400 s); j1, as high, takes n2 until 320 s; low1 ends on its own at 260 s.
VICTIM_ENDS_IN_ITS_GRACE = _trace(
    ("low0", 8, 0, 5000, 0, 5000),
    ("low1", 8, 0, 5000, 10, 250),
    ("j0", 16, 2, 40, 100, 40),
    ("j1", 8, 2, 200, 120, 200),
)
#: j0 waits for low0 (n0, until 1000 s), stopping nobody; j3, as high, takes a GPU of n0 until 101 s; j1 ends at 100 s.
AS_HIGH_BACKFILLED_WHILE_IT_WAITS = _trace(
    ("low0", 4, 0, 1000, 0, 1000), ("j0", 16, 1, 40, 60, 40), ("j1", 1, 0, 40, 60, 40), ("j3", 1, 1, 40, 61, 40)
)


class _Watch:
    """The claimer (stopping victims, or waiting for ending jobs), its latest start, and the checks on later passes."""

    def __init__(self) -> None:
        self.job: str | None = None
        self.start = float("inf")

    def check(self, decisions: Decisions, jobs: dict[str, Job], now: float) -> None:
        started = {s.job_id for s in decisions.starts}
        if self.job is not None and self.job not in started:
            assert now < self.start, "the claimer did not start when its reservation came"
            assert decisions.claimer == self.job
            assert decisions.preemptions == (), "nothing changed, yet it proposed further victims"
            reserved = next(w.reserved_start for w in decisions.waits if w.job_id == self.job)
            assert reserved is not None
            assert reserved <= self.start, "the reservation moved later"
            self.start = reserved
        elif self.job in started:
            self.job, self.start = None, float("inf")
        for proposal in decisions.preemptions:
            assert jobs[proposal.job_id].stopping is None, f"{proposal.job_id} was proposed twice"
        if decisions.claimer is not None and self.job is None:
            self.job = decisions.claimer
            self.start = next(w.reserved_start or 0.0 for w in decisions.waits if w.job_id == self.job)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs_and_runs=arrivals(), count=st.integers(1, 3), grace=st.sampled_from([30.0, 300.0, 3000.0]))
@example(jobs_and_runs=VICTIM_ENDS_IN_ITS_GRACE, count=3, grace=300.0)
@example(jobs_and_runs=AS_HIGH_BACKFILLED_WHILE_IT_WAITS, count=2, grace=3000.0)
def test_passes_in_a_grace_period_never_repropose_a_job_nor_move_the_claimers_start_later(
    jobs_and_runs: tuple[list[Job], dict[str, float]], count: int, grace: float
) -> None:
    queue, runs = list(jobs_and_runs[0]), jobs_and_runs[1]  # the explicit examples' lists are shared
    config = dataclasses.replace(PREEMPTIVE, grace_s=grace)
    cluster = nodes(count)
    jobs: dict[str, Job] = {}
    protected: frozenset[str] = frozenset()
    claimer: str | None = None
    watch = _Watch()
    for _ in range(400):
        now = _next_event(jobs, runs, queue)
        if now is None:
            break
        _due(jobs, runs, now)
        while queue and queue[0].submitted_at <= now:
            arrived = queue.pop(0)
            jobs[arrived.id] = arrived
        decisions = schedule(cluster, list(jobs.values()), now, config, protected=protected, claimer=claimer)
        watch.check(decisions, jobs, now)
        for start in decisions.starts:
            jobs[start.job_id] = _place(jobs[start.job_id], now, start.placement.allocation)
        for proposal in decisions.preemptions:
            jobs[proposal.job_id] = jobs[proposal.job_id].evolve(stopping=proposal.stop_request(now))
        protected, claimer = decisions.protected, decisions.claimer
    assert not queue, "the live loop did not finish"
    assert all(job.num_gpus > 8 * count for job in jobs.values()), "jobs wait on an idle cluster"
