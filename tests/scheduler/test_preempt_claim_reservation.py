"""A job making room by preemption holds a reservation meanwhile, so backfill cannot take the GPUs it waits for.

While it waited for gangs ending within the grace period (or for its victims to checkpoint) it held nothing: backfill
started lower-priority jobs on the GPUs those gangs were about to free, and it had to preempt them at the next pass.
Now the pass gives it a reservation on its planned placement from when those GPUs free, as for any reserved job:
a backfilled job may use them only if it ends by then. The live pass and the replay do the same.
"""

from __future__ import annotations

import dataclasses

from helpers import nodes, pending, running

from factoryctl.scheduler.decide import schedule
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob

GRACE_S = 300.0
PREEMPTIVE = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=GRACE_S)
NOW = 900.0


def job(job_id: str, submit: float, duration: float, gpus: int = 8, priority: int = 0) -> TraceJob:
    return TraceJob(job_id, submit, duration, gpus, None, priority, duration)


def vip_waiting_for_old(*backfill: tuple[str, float]) -> list:
    """vip needs both nodes: n1 is free, n0 frees at 1000 s when `old` ends, 100 s into the grace period."""
    jobs = [running("old", [("n0", 8)], 0, 1000), pending("vip", 16, NOW, priority=10, walltime_s=50)]
    return jobs + [pending(name, 8, NOW, walltime_s=walltime) for name, walltime in backfill]


def test_a_claimer_waiting_for_an_ending_job_keeps_the_free_node_from_a_longer_backfill() -> None:
    decisions = schedule(nodes(2), vip_waiting_for_old(("long", 5000)), NOW, PREEMPTIVE)
    assert decisions.starts == ()  # long would run past 1000 s on n1, which vip needs then
    waits = {w.job_id: w for w in decisions.waits}
    assert (waits["vip"].reserved_start, waits["vip"].reserved_nodes) == (1000, ("n0", "n1"))
    assert waits["vip"].reason.endswith("on n0, n1: waiting for old, ending within the grace period")
    assert waits["long"].reason.endswith("starting it now would delay a reserved job")
    assert decisions.preemptions == ()


def test_a_backfill_job_ending_before_the_claim_still_starts() -> None:
    decisions = schedule(nodes(2), vip_waiting_for_old(("short", 100)), NOW, PREEMPTIVE)
    assert [(s.job_id, s.placement.nodes, s.backfilled) for s in decisions.starts] == [("short", ("n1",), True)]


def test_victims_make_room_on_a_free_node_a_backfill_no_longer_takes() -> None:
    """Backfill used to take n1 first; then stopping `young` made no room and nobody was stopped for vip."""
    jobs = [
        running("young", [("n0", 8)], 500, 86_400),
        pending("vip", 16, NOW, priority=10, walltime_s=50),
        pending("long", 8, NOW, walltime_s=5000),
    ]
    decisions = schedule(nodes(2), jobs, NOW, PREEMPTIVE)
    assert decisions.starts == ()
    assert [p.job_id for p in decisions.preemptions] == ["young"]
    vip = next(w for w in decisions.waits if w.job_id == "vip")
    assert (vip.reserved_start, vip.reserved_nodes) == (NOW + GRACE_S, ("n0", "n1"))
    assert vip.reason.endswith("on n0, n1: preempting young")


def test_the_replay_keeps_the_gpus_for_the_claimer_and_stops_nobody() -> None:
    """C used to backfill n002 at 900 s, and vip stopped it at 1000 s when `A` had ended: one stop, now none."""
    trace = [job("A", 0, 1000), job("vip", NOW, 50, gpus=16, priority=1), job("C", NOW, 5000)]
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    starts = {r.job_id: r.start_s for r in result.records}
    assert (starts["vip"], starts["C"]) == (1000, 1050)
    assert (result.preemptions, len(result.records)) == (0, 3)


def test_a_job_backfilled_at_the_claim_ends_before_it_and_hands_its_gpus_over() -> None:
    """`short` ends within low's grace period, so the pass that stops low lets it run on vip's free node."""
    config = dataclasses.replace(PREEMPTIVE, grace_s=30.0)
    trace = [job("low", 0, 5000), job("vip", 100, 50, gpus=16, priority=10), job("short", 100, 20)]
    result = simulate(trace, cluster_nodes(2, 8), config)
    runs = {(r.job_id, r.start_s, r.end_s, r.allocation_text()) for r in result.records}
    assert ("short", 100, 120, "n002:8") in runs
    assert ("vip", 130, 180, "n001:8 n002:8") in runs
    assert result.preemptions == 1


def test_explain_says_the_claimer_holds_a_reservation_for_the_ending_jobs_gpus() -> None:
    trace = [job("A", 0, 1000), job("vip", NOW, 50, gpus=16, priority=1), job("C", NOW, 5000)]
    shown = {j.job_id: j for j in explain_at(trace, cluster_nodes(2, 8), PREEMPTIVE, NOW).jobs}
    assert shown["A"].reason == (
        "ends within the grace period, at 1000 s (in ~2 min): job vip waits for it,"
        " holding a reservation on n001, n002 from 1000 s"
    )
    assert shown["vip"].state == "PENDING"
    assert (shown["vip"].reserved_start_s, shown["vip"].reserved_nodes) == (1000, ("n001", "n002"))
    assert shown["vip"].reason == (
        "waiting for 2 nodes with 8 free GPUs (1 now); reserved start in ~2 min on n001, n002:"
        " waiting for A, ending within the grace period"
    )
    assert shown["C"].reason.endswith("starting it now would delay a reserved job")


def test_the_claimer_stays_first_and_keeps_its_reservation_when_a_job_becomes_protected() -> None:
    """The next pass, P is protected (starving): without `claimer` it came first and long took n1 from vip."""
    jobs = [
        running("old", [("n0", 8)], 0, 1000),
        running("big", [("n2", 8)], 0, 5000, priority=10),  # as high as vip: neither stopped nor waited for
        pending("vip", 16, NOW, priority=10, walltime_s=50),
        pending("P", 8, 0.0, walltime_s=5000, nodes=("n2",)),  # it cannot start before big ends
        pending("long", 8, NOW, walltime_s=5000),
    ]
    first = schedule(nodes(3), jobs, NOW, PREEMPTIVE)
    assert (first.starts, first.claimer) == ((), "vip")
    forgetting = schedule(nodes(3), jobs, NOW + 50, PREEMPTIVE, protected=("P",))
    assert [s.job_id for s in forgetting.starts] == ["long"]  # what happened without the claimer passed back
    again = schedule(nodes(3), jobs, NOW + 50, PREEMPTIVE, protected=("P",), claimer=first.claimer)
    assert again.starts == ()
    assert again.claimer == "vip"
    vip = next(w for w in again.waits if w.job_id == "vip")
    assert (vip.reserved_start, vip.reserved_nodes) == (1000, ("n0", "n1"))
