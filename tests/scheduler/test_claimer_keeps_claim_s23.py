"""The job preemption makes room for keeps its claim until it starts, also when it is a protected starving job.

Protected jobs go oldest first. The claimer went first only when it was not protected itself: protected, it took
its place by age, so an older job protected after it claimed came first, found no room first and took the
reservation on the GPUs freed by stopping a job for the claimer, or restarted on them: the job stopped for it,
requeued with its old submit time, is such a job, and two low jobs then stopped each other for it forever. Also
pinned: a running job whose walltime ends at this very instant is waited for (the executor stops it now), and only
one past its walltime may be stopped.
"""

from __future__ import annotations

import dataclasses

from helpers import nodes, pending, running
from test_sched_queue_index import _index

from factoryctl.model.jobs import StopRequest
from factoryctl.scheduler.core import plan
from factoryctl.scheduler.decide import Decisions, _build, preemption_claims, schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig

#: One protection slot for each of the two queued jobs; the starving floor 100 s, whatever the queue.
CONFIG = SchedulerConfig(preemption=True, grace_s=120, starve_after_s=100, starve_drain_factor=0.0, protect_oldest=2)
LOW = running("low", [("n0", 8)], 0, 10**6, priority=0)
VIP = pending("vip", 8, 50, priority=10, walltime_s=3600)
#: Older than vip, but deferred at the first pass's price: it took no protection slot then.
CHEAP = pending("cheap", 8, 0, walltime_s=3600, deferrable=True, max_price=50.0)


def _wait(decisions: Decisions, job_id: str) -> tuple[float | None, tuple[str, ...], str]:
    wait = next(w for w in decisions.waits if w.job_id == job_id)
    return wait.reserved_start, wait.reserved_nodes, wait.reason


def test_a_protected_claimer_keeps_its_reservation_when_an_older_job_becomes_protected() -> None:
    first = schedule(nodes(1), [LOW, VIP, CHEAP], 1000, CONFIG, price=100.0)
    assert ([p.job_id for p in first.preemptions], first.claimer) == (["low"], "vip")
    assert first.protected == frozenset({"vip"})
    stopping = dataclasses.replace(LOW, stopping=first.preemptions[0].stop_request(1000))
    # The price fell: cheap runs now, and being older it is protected too, ahead of vip by age.
    again = schedule(
        nodes(1), [stopping, VIP, CHEAP], 1010, CONFIG, price=10.0, protected=first.protected, claimer=first.claimer
    )
    assert again.protected == frozenset({"vip", "cheap"})
    assert (again.starts, again.preemptions, again.claimer) == ((), (), "vip")
    assert _wait(again, "vip") == (
        1120,
        ("n0",),
        "waiting for 1 node with 8 free GPUs (0 now); reserved start in ~2 min on n0: waiting for low to stop",
    )
    assert _wait(again, "cheap")[:2] == (None, ())  # before, it took the reservation on the GPUs low frees for vip


def test_the_claimer_goes_first_among_the_protected_with_the_simulators_index_too() -> None:
    """`plan` given a `QueueIndex` (the replay's path) puts a protected claimer first as it does without one."""
    stop = schedule(nodes(1), [LOW, VIP], 1000, CONFIG).preemptions[0].stop_request(1000)
    jobs = [dataclasses.replace(LOW, stopping=stop), VIP, pending("old", 8, 0, walltime_s=3600)]
    outcomes = []
    for indexed in (False, True):
        fm, running_gangs, queue = _build(nodes(1), jobs, 1010, CONFIG)
        outcomes.append(
            plan(
                fm,
                queue,
                running_gangs,
                1010,
                CONFIG,
                protected=("vip",),
                index=_index(fm, queue) if indexed else None,
                claim_for=preemption_claims(fm, jobs, CONFIG, 1010, "vip"),
                claimer="vip",
            )
        )
    for outcome in outcomes:
        assert outcome.protected == {"vip", "old"}
        assert outcome.first_short is not None
        assert outcome.first_short.id == "vip"
        assert outcome.claim is not None
        assert (outcome.claim.job.id, outcome.claim.start, outcome.claim.stopping) == ("vip", 1120, ("low",))
        assert outcome.started == []


PREEMPTIVE = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=300.0)


def test_a_job_at_its_walltimes_end_is_waited_for_and_one_past_it_is_stopped() -> None:
    """At 400 s `over` ends now (the executor stops it at its walltime): stopping it would requeue a job that used
    its walltime up and give it 300 s more. A second later it is past its walltime: nothing is known to end it."""
    live = [running("over", [("n0", 8)], 0, 400), pending("vip", 8, 300, priority=10, walltime_s=50)]
    at_end = schedule(nodes(1), live, 400, PREEMPTIVE)
    assert (at_end.preemptions, at_end.claimer) == ((), "vip")
    assert _wait(at_end, "vip")[:2] == (400, ("n0",))
    assert _wait(at_end, "vip")[2].endswith("on n0: waiting for over, ending within the grace period")
    past = schedule(nodes(1), live, 401, PREEMPTIVE)
    assert [p.job_id for p in past.preemptions] == ["over"]
    assert _wait(past, "vip")[:2] == (701, ("n0",))


def test_a_job_being_stopped_frees_its_gpus_at_its_walltimes_end_when_that_comes_first() -> None:
    """Asked at 300 s to stop by 600 s, `over` frees n0 at its walltime's end, 400 s: at 400 s that is now."""
    over = running("over", [("n0", 8)], 0, 400)
    live = [dataclasses.replace(over, stopping=StopRequest("vip", 300, 300)), VIP]
    decisions = schedule(nodes(1), live, 400, PREEMPTIVE, claimer="vip")
    assert (decisions.preemptions, decisions.claimer) == ((), "vip")
    assert _wait(decisions, "vip")[:2] == (400, ("n0",))


def test_a_claimer_protected_with_its_older_victim_starts_instead_of_preempting_back_and_forth() -> None:
    """No price needed: vip and the job stopped for it, requeued, starve together; the victim, older, came first.

    It restarted on the GPUs freed for vip, which then stopped the other low job, whose requeue took them back in
    turn: the two low jobs stopped each other for vip every grace period, and vip never started.
    """
    config = SchedulerConfig(preemption=True, grace_s=30, starve_after_s=10, starve_drain_factor=0.0, protect_oldest=2)
    low0, low1 = (running(f"low{i}", [("n0", 4)], 40, 1000) for i in range(2))
    vip = pending("vip", 1, 41, priority=1, walltime_s=40)
    first = schedule(nodes(1), [low0, low1, vip], 41, config)
    assert ([p.job_id for p in first.preemptions], first.claimer) == (["low0"], "vip")
    requeued = pending("low0", 4, 0, walltime_s=1000)  # stopped at 71 s; it keeps its submit time
    again = schedule(nodes(1), [requeued, low1, vip], 71, config, protected=first.protected, claimer="vip")
    assert ([s.job_id for s in again.starts], again.preemptions) == (["vip"], ())
    assert again.protected == frozenset({"low0"})  # vip was protected too, and started
