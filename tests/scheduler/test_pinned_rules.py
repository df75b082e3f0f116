"""Scheduling rules that mutation testing found unpinned: each test fails on a one-token change of the pass."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import nodes, pending, running

from factoryctl.model.jobs import SchedNode
from factoryctl.scheduler.decide import schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob

EASY = POLICIES["easy"]
DEFAULT = POLICIES["default"]


def waits(decisions):
    return {w.job_id: w for w in decisions.waits}


def test_a_starving_deferrable_job_is_protected_while_its_price_is_met():
    # Deferrable is not deferred: at a price under its max_price it can run now, so it takes the guard.
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0)
    jobs = [
        running("r", [("n1", 8)], 0, 7200),
        pending("patient", 16, 0, walltime_s=3600, deferrable=True, max_price=50.0),
        pending("small", 8, 4999, walltime_s=36_000),
    ]
    decisions = schedule(nodes(2), jobs, 5000, config, price=40.0)
    assert decisions.protected == {"patient"}
    assert waits(decisions)["patient"].reserved_start == 7200
    assert decisions.starts == ()  # small would outlast patient's reservation


def test_with_the_drain_term_off_a_small_job_starves_after_the_floor_like_any_other():
    # docs: with starve_drain_factor 0 the small jobs' longer threshold is off too; tiny waited past the floor.
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0)
    jobs = [
        running("r", [("n0", 8)], 0, 100_000),
        pending("tiny", 1, 0, walltime_s=3600),
        pending("big", 8, 10, walltime_s=100_000),
    ]
    decisions = schedule(nodes(1), jobs, 1000, config)
    assert decisions.protected == {"tiny"}


def test_a_job_protected_earlier_takes_one_slot_of_protect_oldest_not_more():
    # protect_oldest 2 with one job protected by the previous pass: one more starving job joins it.
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0, protect_oldest=2)
    jobs = [
        running("r", [("n0", 8)], 0, 10_000),
        pending("a", 8, 0, walltime_s=3600),
        pending("b", 8, 10, walltime_s=3600),
        pending("c", 8, 20, walltime_s=3600),
    ]
    decisions = schedule(nodes(1), jobs, 5000, config, protected={"a"})
    assert decisions.protected == {"a", "b"}


def test_backfilled_jobs_share_a_reserved_nodes_spare_gpus_and_never_take_more():
    # big holds 6 GPUs on each node from 1,000; n1 has 8 free now, so jobs running past 1,000 may take its spare 2.
    jobs = [
        running("r", [("n0", 8)], 0, 1000),
        pending("big", 12, 0, gpus_per_node=6),
        pending("l1", 2, 1, walltime_s=5000),
        pending("l2", 2, 2, walltime_s=5000),
        pending("short", 6, 3, walltime_s=500),
    ]
    decisions = schedule(nodes(2), jobs, 10, EASY)
    assert {s.job_id: s.placement.render() for s in decisions.starts} == {"l1": "n1:2", "short": "n1:6"}
    assert waits(decisions)["big"].reserved_start == 1000


def test_a_pinned_jobs_reservation_waits_for_its_own_node_not_the_first_to_empty():
    # n0 empties at 500, but the job may use n1 only, busy until 1,000 (n0 is then free too, and not its node).
    jobs = [
        running("r0", [("n0", 4)], 0, 500),
        running("r1", [("n1", 8)], 0, 1000),
        pending("pinned", 8, 1, nodes=("n1",)),
    ]
    wait = waits(schedule(nodes(2), jobs, 10, EASY))["pinned"]
    assert (wait.reserved_start, wait.reserved_nodes) == (1000, ("n1",))
    assert wait.reason.startswith("waiting for 1 node with 8 free GPUs (0 now); reserved start in")


def test_a_constrained_jobs_reason_counts_the_allowed_nodes_free_now():
    # Of the two nodes it may use, one has 8 GPUs free: "(1 now)", not the count of GPUs or of other nodes.
    jobs = [running("r", [("n1", 8)], 0, 1000), pending("pair", 16, 1, nodes=("n0", "n1"))]
    wait = waits(schedule(nodes(3), jobs, 10, EASY))["pair"]
    assert wait.reason.startswith("waiting for 2 nodes with 8 free GPUs (1 now); reserved start in")
    assert wait.reserved_nodes == ("n0", "n1")


def test_a_gang_wider_per_node_than_any_node_can_never_run_and_blocks_no_one():
    # gpus_per_node 9 on 8-GPU nodes: one more GPU per node than the largest node has.
    jobs = [pending("wide", 9, 0, gpus_per_node=9), pending("fine", 8, 1)]
    decisions = schedule(nodes(2), jobs, 10, POLICIES["fifo"])
    assert [s.job_id for s in decisions.starts] == ["fine"]
    reason = waits(decisions)["wide"].reason
    assert reason == "can never run here: needs 1 node with 9 free GPUs, and the cluster has fewer"


def test_a_job_pinned_to_a_node_too_small_for_it_can_never_run_and_blocks_no_one():
    cluster = [SchedNode("small", 4), SchedNode("big", 8)]
    jobs = [pending("pinned", 8, 0, nodes=("small",)), pending("fine", 8, 1)]
    decisions = schedule(cluster, jobs, 10, POLICIES["fifo"])
    assert [s.job_id for s in decisions.starts] == ["fine"]
    assert waits(decisions)["pinned"].reason.startswith("can never run here: needs 1 node with 8 free GPUs among")


@pytest.mark.parametrize(("away_s", "said"), [(5399, "~90 min"), (5400, "~2 h"), (172_799, "~48 h"), (172_800, "~2 d")])
def test_a_reserved_start_is_said_in_the_next_unit_from_90_minutes_and_from_48_hours(away_s, said):
    jobs = [running("r", [("n0", 8)], 0, 10 + away_s), pending("next", 8, 1)]
    reason = schedule(nodes(1), jobs, 10, EASY).waits[0].reason
    assert reason == f"waiting for 1 node with 8 free GPUs (0 now); reserved start in {said} on n0"


def test_on_no_nodes_at_all_a_job_is_described_by_the_shape_it_asked_for():
    decisions = schedule([], [pending("j", 8, 0)], 10, EASY)
    reason = waits(decisions)["j"].reason
    assert reason == "can never run here: needs 1 node with 8 free GPUs, and the cluster has fewer"


def test_the_replay_backfills_a_short_job_past_a_longer_one_of_its_shape_that_met_a_reservation():
    # With two reservations the replay's pass walks on after b (8 GPUs, outlasting a's reservation at 1,000) fails:
    # c, of b's shape but ending at 110, still fits before that reservation and backfills at once, as live.
    config = dataclasses.replace(EASY, reservations=2)
    trace = [
        TraceJob("r", 0, 1000, 8),
        TraceJob("a", 10, 500, 16),
        TraceJob("b", 10, 5000, 8),
        TraceJob("c", 10, 100, 8),
    ]
    result = simulate(trace, cluster_nodes(2, 8), config)
    started = {record.job_id: (record.start_s, record.allocation_text()) for record in result.records}
    assert started == {"r": (0, "n001:8"), "c": (10, "n002:8"), "a": (1000, "n001:8 n002:8"), "b": (1500, "n001:8")}


def test_a_job_backfills_beside_a_preemption_on_the_gpus_its_claimer_will_not_need():
    # vip (6 GPUs) stops low (4 of n0's 8): at the claim's start n0 has 8 free and vip takes 6, so a long 2-GPU job
    # may run on n0's 4 GPUs free now without delaying vip.
    config = SchedulerConfig(preemption=True, grace_s=120)
    jobs = [
        running("low", [("n0", 4)], 0, 10**6, priority=0),
        pending("vip", 6, 5, priority=10),
        pending("side", 2, 6, walltime_s=7200),
    ]
    decisions = schedule(nodes(1), jobs, 10, config)
    assert [(p.job_id, p.for_job) for p in decisions.preemptions] == [("low", "vip")]
    assert {s.job_id: s.placement.render() for s in decisions.starts} == {"side": "n0:2"}
    assert waits(decisions)["vip"].reserved_start == 130


@pytest.mark.parametrize("duration", [100, 990])
def test_the_replay_backfills_a_job_ending_by_the_reservation_even_exactly_at_it(duration):
    trace = [
        TraceJob("r", 0, 1000, 8),
        TraceJob("a", 10, 500, 16),
        TraceJob("b", 10, 5000, 8),
        TraceJob("c", 10, duration, 8),
    ]
    result = simulate(trace, cluster_nodes(2, 8), dataclasses.replace(EASY, reservations=2))
    assert {record.job_id: record.start_s for record in result.records}["c"] == 10


def test_a_pinned_job_may_take_exactly_the_spare_gpus_a_reservation_leaves_on_its_node():
    jobs = [
        running("r", [("n0", 8)], 0, 1000),
        pending("big", 12, 0, gpus_per_node=6),
        pending("pinned", 2, 1, walltime_s=5000, nodes=("n1",)),
    ]
    decisions = schedule(nodes(2), jobs, 10, EASY)
    assert {s.job_id: s.placement.render() for s in decisions.starts} == {"pinned": "n1:2"}


def test_a_long_wait_on_nodes_that_are_all_down_is_described_not_a_crash():
    # No schedulable GPU at all: the starving guard's drain time has nothing to divide by.
    decisions = schedule([SchedNode("n0", 8, state="down")], [pending("old", 8, 0, walltime_s=3600)], 200_000, DEFAULT)
    reason = waits(decisions)["old"].reason
    assert reason == "waiting for nodes that are down, drained or unhealthy: needs 1 node with 8 free GPUs"
