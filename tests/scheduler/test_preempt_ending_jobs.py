"""A running job whose walltime ends within the grace period is never stopped: the preempting job waits for it.

Stopping it gained nothing (it frees its GPUs by the end of the grace period anyway) and threw its last minutes of
work away; worse, the youngest-first order stopped a day-long job while an older one was about to free the room.
Its GPUs still count, so waiting for it spares stopping anyone else (leaving it out altogether once made the
choice stop more jobs than needed).
"""

from __future__ import annotations

import dataclasses

from helpers import nodes, pending, running

from factoryctl.scheduler.decide import _build, schedule
from factoryctl.scheduler.passdata import Candidate
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.preempt import Holder, choose_victims, plan_claim
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import SimulationResult, cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob

GRACE_S = 300.0
PREEMPTIVE = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=GRACE_S)
NOW = 900.0


def job(job_id: str, submit: float, duration: float, gpus: int = 8, priority: int = 0) -> TraceJob:
    return TraceJob(job_id, submit, duration, gpus, None, priority, duration)


def vip(nodes_needed: int = 1) -> Candidate:
    """A waiting priority-10 job of `nodes_needed` whole 8-GPU nodes."""
    return Candidate("vip", 8 * nodes_needed, nodes_needed, 8, 50.0, NOW, (0.0, NOW, 0), priority=10)


def holder(job_id: str, node: int, started_at: float, ends_by: float) -> Holder:
    return Holder(job_id, 0, started_at, ((node, 8),), ends_by)


def full_map(count: int):  # every node busy, as the pass that found no room for vip left it
    fm, _, _ = _build(nodes(count), [running(f"r{i}", [(f"n{i}", 8)], 0, 1e9) for i in range(count)], NOW, PREEMPTIVE)
    return fm


def stopped(result: SimulationResult) -> set[str]:
    counts: dict[str, int] = {}
    for record in result.records:
        counts[record.job_id] = counts.get(record.job_id, 0) + 1
    return {job_id for job_id, runs in counts.items() if runs > 1}


def test_a_job_ending_within_the_grace_is_waited_for_not_stopped() -> None:
    ending = holder("ending", 0, 0.0, NOW + 100)
    plan = plan_claim(full_map(1), vip(), [ending], stop_at=NOW + GRACE_S)
    assert (plan.victims, plan.awaited) == ([], [ending])
    assert choose_victims(full_map(1), vip(), [ending], stop_at=NOW + GRACE_S) == []
    # a job ending after the grace period is stopped as before, and so is any job when no end is known
    late = holder("late", 0, 0.0, NOW + GRACE_S + 1)
    assert choose_victims(full_map(1), vip(), [late], stop_at=NOW + GRACE_S) == [late]
    assert choose_victims(full_map(1), vip(), [ending]) == [ending]


def test_an_ending_job_spares_stopping_a_younger_long_one() -> None:
    """Youngest first used to stop `long` (a day of work) while `ending` freed its node 100 s later."""
    ending = holder("ending", 0, 0.0, NOW + 100)
    long = holder("long", 1, 800.0, NOW + 86_400)
    plan = plan_claim(full_map(2), vip(), [ending, long], stop_at=NOW + GRACE_S)
    assert (plan.victims, plan.awaited) == ([], [ending])


def test_an_ending_job_that_is_not_enough_is_waited_for_beside_the_victims() -> None:
    """vip needs two nodes: one comes from the ending job, the other from stopping the youngest long one."""
    ending = holder("ending", 0, 0.0, NOW + 100)
    old, young = holder("old", 1, 10.0, NOW + 86_400), holder("young", 2, 800.0, NOW + 86_400)
    plan = plan_claim(full_map(3), vip(2), [ending, old, young], stop_at=NOW + GRACE_S)
    assert (plan.victims, plan.awaited) == ([young], [ending])


def test_an_ending_job_not_needed_is_not_waited_for() -> None:
    soon, later = holder("soon", 0, 0.0, NOW + 100), holder("later", 1, 0.0, NOW + 200)
    plan = plan_claim(full_map(2), vip(), [later, soon], stop_at=NOW + GRACE_S)
    assert (plan.victims, plan.awaited) == ([], [soon])  # the later one is put back: vip starts when soon ends


def test_the_replay_waits_for_the_ending_job_and_stops_nobody() -> None:
    """`old` ends at 1000 s, within vip's grace period (900 + 300 s): vip runs on its node then, `young` runs on."""
    trace = [job("old", 0, 1000), job("young", 500, 10_000), job("vip", NOW, 50, priority=10)]
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    starts = {r.job_id: (r.start_s, r.allocation_text()) for r in result.records}
    assert starts["vip"] == (1000, "n001:8")
    assert stopped(result) == set()
    assert (result.preemptions, result.preempted_gpu_s) == (0, 0.0)


def test_schedule_proposes_no_stop_of_a_job_ending_within_the_grace() -> None:
    """The live scheduler, at the instant of the replay's test above: the same choice, nobody stopped."""
    live = [
        running("old", [("n0", 8)], 0, 1000),  # its walltime ends at 1000 s, 100 s into the grace period
        running("young", [("n1", 8)], 500, 10_000),
        pending("vip", 8, NOW, priority=10, walltime_s=50),
    ]
    assert schedule(nodes(2), live, NOW, PREEMPTIVE).preemptions == ()
    assert schedule(nodes(1), [live[0], live[2]], NOW, PREEMPTIVE).preemptions == ()
    later = dataclasses.replace(PREEMPTIVE, grace_s=50.0)  # old runs past this grace period: young is stopped
    assert [p.job_id for p in schedule(nodes(2), live, NOW, later).preemptions] == ["young"]


def test_explain_says_the_ending_job_is_waited_for_not_preempted() -> None:
    """vip needs two nodes: `ending` (within the grace period) is waited for, `young` is the one preempted."""
    trace = [
        job("ending", 0, 1000),
        job("old", 10, 86_400),
        job("young", 800, 86_400),
        job("vip", NOW, 50, gpus=16, priority=10),
    ]
    shown = {j.job_id: j for j in explain_at(trace, cluster_nodes(3, 8), PREEMPTIVE, NOW).jobs}
    assert "preempted" not in shown["ending"].reason
    assert "job vip waits for it" in shown["ending"].reason
    assert shown["young"].reason.startswith("preempted for job vip")
    assert "preempted" not in shown["old"].reason
    assert shown["vip"].reason.startswith("preempting young (and waiting for ending, ending within the grace period)")


def test_a_claim_with_nobody_to_stop_holds_no_gpus_in_the_replay() -> None:
    """B only waits for A (ending within the grace period): C backfills the free node, as the live pass lets it."""
    trace = [job("A", 0, 400), job("B", 100, 50, gpus=16, priority=1), job("C", 110, 200)]
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    starts = {r.job_id: (r.start_s, r.allocation_text()) for r in result.records}
    assert starts["C"][0] == 110  # it used to sit until B's claim was settled, on a node nobody used
    assert starts["B"][0] == 400
    assert stopped(result) == set()


def test_a_job_past_its_walltime_is_no_job_to_wait_for() -> None:
    """Nothing stops a job at its walltime yet: one running past it may end any time or never, so it is a victim."""
    live = [running("over", [("n0", 8)], 0, 400), pending("vip", 8, 99_000, priority=10, walltime_s=50)]
    assert [p.job_id for p in schedule(nodes(1), live, 100_000, PREEMPTIVE).preemptions] == ["over"]
