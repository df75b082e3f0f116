"""One test per scheduling rule, through the public `schedule` entry point."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import nodes, pending, running

from factoryctl.model.jobs import JobState, SchedNode
from factoryctl.scheduler.decide import schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig

EASY = POLICIES["easy"]
FIFO = POLICIES["fifo"]
DEFAULT = POLICIES["default"]


def starts(decisions):
    return {s.job_id: s.placement.render() for s in decisions.starts}


def waits(decisions):
    return {w.job_id: w for w in decisions.waits}


def test_small_job_packs_on_one_node_best_fit():
    cluster = nodes(2)
    jobs = [running("r", [("n1", 5)], 0, 1000), pending("a", 3, 1)]
    assert starts(schedule(cluster, jobs, 10, EASY)) == {"a": "n1:3"}


def test_large_job_takes_whole_nodes_all_or_nothing():
    cluster = nodes(3)
    jobs = [running("r", [("n0", 1)], 0, 1000), pending("big", 24, 1)]
    decisions = schedule(cluster, jobs, 10, EASY)
    assert decisions.starts == ()
    assert waits(decisions)["big"].state is JobState.PENDING
    cluster4 = nodes(4)
    decided = starts(schedule(cluster4, jobs, 10, EASY))
    assert decided == {"big": "n1:8 n2:8 n3:8"}


def test_gpus_per_node_splits_the_gang():
    decided = starts(schedule(nodes(2), [pending("j", 12, 0, gpus_per_node=6)], 1, EASY))
    assert decided == {"j": "n0:6 n1:6"}


def test_down_drained_and_unhealthy_nodes_receive_nothing():
    cluster = [
        SchedNode("down", 8, state="down"),
        SchedNode("drained", 8, drained=True),
        SchedNode("sick", 8, healthy=False),
        SchedNode("ok", 8),
    ]
    jobs = [pending(f"j{i}", 8, i) for i in range(3)]
    decisions = schedule(cluster, jobs, 10, EASY)
    assert starts(decisions) == {"j0": "ok:8"}
    assert len(decisions.waits) == 2


def test_topology_prefers_fewest_racks():
    cluster = nodes(6, rack_size=3)
    jobs = [running("r", [("n0", 8)], 0, 1000), pending("pair", 16, 1)]
    placement = starts(schedule(cluster, jobs, 10, EASY))["pair"]
    # Both racks can hold the pair; the tighter one (r0, two free nodes) is used and rack r1 stays whole.
    assert placement == "n1:8 n2:8"
    split = [running("r", [("n0", 8), ("n3", 8)], 0, 1000), pending("trio", 24, 1)]
    # No rack has three free nodes: the gang spans two racks (a preference, not a requirement).
    assert starts(schedule(cluster, split, 10, EASY)) == {"trio": "n1:8 n2:8 n4:8"}
    assert starts(schedule(nodes(6, rack_size=3), split[1:], 10, EASY))["trio"] == "n0:8 n1:8 n2:8"


def test_fifo_stops_at_first_job_that_does_not_fit():
    cluster = nodes(2)
    jobs = [running("r", [("n0", 8)], 0, 1000), pending("big", 16, 1), pending("small", 1, 2)]
    decisions = schedule(cluster, jobs, 10, FIFO)
    assert decisions.starts == ()
    assert "queued behind job big" in waits(decisions)["small"].reason


def test_easy_reserves_for_head_and_backfills_only_harmless_jobs():
    cluster = nodes(2)
    jobs = [
        running("r", [("n0", 8)], 0, 1000),
        pending("big", 16, 1),
        pending("short", 2, 2, walltime_s=500),
        pending("long", 2, 3, walltime_s=5000),
    ]
    decisions = schedule(cluster, jobs, 10, EASY)
    assert set(starts(decisions)) == {"short"}
    assert decisions.starts[0].backfilled
    big = waits(decisions)["big"]
    assert big.reserved_start == 1000
    assert set(big.reserved_nodes) == {"n0", "n1"}
    assert "reserved start in ~16 min" in big.reason
    assert "delay a reserved job" in waits(decisions)["long"].reason


def test_backfill_may_use_gpus_the_reservation_does_not_need():
    cluster = nodes(3)
    jobs = [
        running("r", [("n0", 8)], 0, 1000),
        running("r2", [("n1", 4)], 0, 1000),
        pending("big", 16, 1),
        pending("long", 4, 3, walltime_s=50000),
    ]
    decisions = schedule(cluster, jobs, 10, EASY)
    # big is reserved on n0+n1 at t=1000; n2 is free and not needed, so the long job may run there.
    assert starts(decisions) == {"long": "n2:4"}


def test_priority_runs_first_under_default():
    # Neither has waited the starving floor (half the queue's median walltime, 30 min), so priority decides.
    cluster = nodes(1)
    jobs = [pending("low", 8, 0, walltime_s=3600), pending("high", 8, 100, walltime_s=3600, priority=5)]
    assert set(starts(schedule(cluster, jobs, 200, DEFAULT))) == {"high"}


def test_the_starving_floor_follows_a_queue_of_short_jobs():
    """A gang behind minute-long jobs starves after half their median walltime, not after the fixed 12 hours."""
    cluster = nodes(2)
    jobs = [
        running("r", [("n0", 4)], 0, 900),
        pending("gang", 16, 0, walltime_s=1200),
        *(pending(f"s{k}", 4, 100 + k, walltime_s=600) for k in range(3)),
    ]
    # Median walltime 600 s: the floor is 300 s; the drain time (26,400 GPU-s over 16 GPUs) halves to 825 s.
    early = schedule(cluster, jobs, 800, DEFAULT)
    assert waits(early)["gang"].reserved_start is None  # waited 800 s, under 825: the short jobs go first
    assert set(starts(early)) == {"s0", "s1", "s2"}
    late = schedule(cluster, jobs, 850, DEFAULT)
    assert waits(late)["gang"].reserved_start == 900  # starving: reserved where r ends
    assert set(starts(late)) == set()  # each short job would outlast 900 s on the GPUs the gang needs
    fixed = dataclasses.replace(DEFAULT, starve_walltime_factor=0.0)
    assert waits(schedule(cluster, jobs, 850, fixed))["gang"].reserved_start is None  # 12 h floor: no reservation


def test_aging_lets_an_old_job_overtake_a_shorter_new_one():
    cluster = nodes(1)
    old = pending("old", 8, 0, walltime_s=3600)
    # key = submitted_at + 10 x walltime: old is 36,000, young 40,600, newer 700.
    young = pending("young", 8, 40_000, walltime_s=60)
    assert set(starts(schedule(cluster, [old, young], 40_000, DEFAULT))) == {"old"}
    newer = pending("newer", 8, 100, walltime_s=60)
    assert set(starts(schedule(cluster, [old, newer], 200, DEFAULT))) == {"newer"}


def test_starving_job_gets_reservation_and_goes_first():
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0)
    cluster = nodes(2)
    jobs = [
        running("r", [("n0", 4)], 0, 1000),
        pending("hungry", 16, 0, walltime_s=10**6),
        pending("quick", 8, 150, walltime_s=5000),
        pending("tiny", 8, 160, walltime_s=10),
    ]
    decisions = schedule(cluster, jobs, 200, config)
    # quick would outlast the reservation; tiny ends long before it and may backfill.
    assert starts(decisions) == {"tiny": "n1:8"}
    assert waits(decisions)["hungry"].reserved_start == 1000
    assert waits(decisions)["quick"].reserved_start is None


def hungry_behind_a_running_job():
    """2 nodes; r holds 4 GPUs of n0 until 40,000; hungry (16 GPUs) and long (8 GPUs) wait; threshold = drain time."""
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=1.0)
    jobs = [
        running("r", [("n0", 4)], 0, 40_000),
        pending("hungry", 16, 0, walltime_s=500),
        pending("long", 8, 150, walltime_s=50_000),
    ]
    return config, nodes(2), jobs


def test_starving_threshold_follows_the_queue_drain_time():
    # 16 GPUs; queued work 500 x 16 + 50,000 x 8 GPU-seconds drains in 25,500 s, so the threshold is 25,500 s.
    config, cluster, jobs = hungry_behind_a_running_job()
    young = schedule(cluster, jobs, 200, config)
    # hungry has waited past the floor but not the drain time: no reservation yet, long may take n1.
    assert starts(young) == {"long": "n1:8"}
    assert waits(young)["hungry"].reserved_start is None
    fixed = schedule(cluster, jobs, 200, dataclasses.replace(config, starve_drain_factor=0.0))
    assert starts(fixed) == {}
    assert waits(fixed)["hungry"].reserved_start == 40_000
    old = schedule(cluster, jobs, 30_000, config)
    # Past the adaptive threshold it is starving: reserved on both nodes, and long (ends after that) waits.
    assert starts(old) == {}
    assert waits(old)["hungry"].reserved_start == 40_000


def test_price_deferral_waits_holds_no_reservation_and_yields_at_deadline():
    cluster = nodes(1)
    job = pending("cheap", 8, 0, walltime_s=3600, deferrable=True, max_price=50.0, deadline=10_000.0)
    decisions = schedule(cluster, [job], 100, DEFAULT, price=80.0)
    wait = waits(decisions)["cheap"]
    assert wait.state is JobState.DEFERRED
    assert wait.reserved_start is None
    assert "max_price 50" in wait.reason
    assert starts(schedule(cluster, [job], 100, DEFAULT, price=40.0)) == {"cheap": "n0:8"}
    assert starts(schedule(cluster, [job], 7000, DEFAULT, price=80.0)) == {"cheap": "n0:8"}
    assert starts(schedule(cluster, [job], 100, DEFAULT, price=None)) == {"cheap": "n0:8"}


def test_deferred_job_does_not_block_others():
    cluster = nodes(1)
    jobs = [pending("cheap", 8, 0, deferrable=True, max_price=1.0), pending("other", 8, 5)]
    assert set(starts(schedule(cluster, jobs, 10, FIFO, price=100.0))) == {"other"}


def test_job_larger_than_the_cluster_is_reported_and_does_not_block():
    cluster = nodes(2)
    jobs = [pending("huge", 64, 0), pending("fine", 8, 1)]
    decisions = schedule(cluster, jobs, 10, FIFO)
    assert set(starts(decisions)) == {"fine"}
    assert "can never run here" in waits(decisions)["huge"].reason


def test_node_and_label_constraints():
    cluster = [SchedNode("a", 8, labels={"pool": "train"}), SchedNode("b", 8, labels={"pool": "infer"})]
    jobs = [pending("t", 4, 0, labels=(("pool", "infer"),)), pending("n", 4, 1, nodes=("a",))]
    assert starts(schedule(cluster, jobs, 10, EASY)) == {"t": "b:4", "n": "a:4"}
    nowhere = pending("x", 1, 0, nodes=("zzz",))
    assert "can never run" in waits(schedule(cluster, [nowhere], 1, EASY))["x"].reason


def test_preemption_is_off_by_default_and_picks_lower_priority_victims():
    cluster = nodes(1)
    jobs = [running("low", [("n0", 8)], 0, 10**6, priority=0), pending("vip", 8, 5, priority=10)]
    assert schedule(cluster, jobs, 10, DEFAULT).preemptions == ()
    config = SchedulerConfig(preemption=True, grace_s=120)
    (preempt,) = schedule(cluster, jobs, 10, config).preemptions
    assert (preempt.job_id, preempt.for_job, preempt.grace_s) == ("low", "vip", 120)
    equal = [running("peer", [("n0", 8)], 0, 10**6, priority=10), pending("vip", 8, 5, priority=10)]
    assert schedule(cluster, equal, 10, config).preemptions == ()


def test_every_waiting_job_gets_a_readable_reason():
    cluster = nodes(2, rack_size=2)
    jobs = [running("r", [("n0", 8), ("n1", 4)], 0, 2400), pending("big", 16, 1), pending("mid", 8, 2)]
    decisions = schedule(cluster, jobs, 10, EASY)
    big = waits(decisions)["big"]
    assert big.reason.startswith("waiting for 2 nodes with 8 free GPUs (0 now); reserved start in ~40 min")
    assert "rack r0" in big.reason
    assert all(w.reason for w in decisions.waits)


def test_running_job_past_its_walltime_counts_as_ending_now():
    cluster = nodes(1)
    jobs = [running("late", [("n0", 8)], 0, 100), pending("next", 8, 1)]
    assert waits(schedule(cluster, jobs, 500, EASY))["next"].reserved_start == 500


def test_protection_is_never_withdrawn_when_new_arrivals_deepen_the_queue():
    # 16 GPUs, threshold = drain time of the whole queue. At t=30,000 hungry (500 s x 16) and long (50,000 s x 8)
    # drain in 25,500 s: hungry has waited 30,000 s and is starving, so it is reserved at 40,000 (r's end).
    config, cluster, jobs = hungry_behind_a_running_job()
    first = schedule(cluster, jobs, 30_000, config)
    assert waits(first)["hungry"].reserved_start == 40_000
    assert first.protected == {"hungry"}
    # A burst of 8-GPU jobs lifts the drain time to 55,500 s, past hungry's wait.
    burst = [pending(f"b{i}", 8, 30_001, walltime_s=50_000) for i in range(4)]
    deeper = [*jobs, *burst]
    forgetful = schedule(cluster, deeper, 31_000, config)
    assert waits(forgetful)["hungry"].reserved_start is None  # what sticky protection prevents
    assert set(starts(forgetful)) == {"long"}  # and long takes n1, pushing hungry back by 50,000 s
    remembered = schedule(cluster, deeper, 31_000, config, protected=first.protected)
    assert waits(remembered)["hungry"].reserved_start == 40_000
    assert starts(remembered) == {}
    assert remembered.protected == {"hungry"}


def test_protection_ends_when_the_job_starts():
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0)
    jobs = [pending("hungry", 8, 0, walltime_s=500)]
    decisions = schedule(nodes(1), jobs, 1000, config, protected={"hungry", "gone"})
    assert starts(decisions) == {"hungry": "n0:8"}
    assert decisions.protected == frozenset()


def test_gangs_that_do_not_divide_evenly_take_the_fewest_nodes():
    decided = starts(schedule(nodes(3), [pending("odd", 11, 0), pending("twenty", 20, 1)], 5, EASY))
    assert decided == {"odd": "n0:6 n1:5"}
    decided = starts(schedule(nodes(3), [pending("twenty", 20, 1)], 5, EASY))
    assert decided == {"twenty": "n0:7 n1:7 n2:6"}


def test_jobs_that_cannot_run_now_never_take_the_starvation_guard():
    config = dataclasses.replace(DEFAULT, starve_after_s=100, starve_drain_factor=0.0)
    cluster = nodes(2)
    for blocker in (
        pending("huge", 64, 0, walltime_s=3600),  # larger than the cluster
        pending("cheap", 8, 0, walltime_s=3600, deferrable=True, max_price=50.0),  # deferred at this price
    ):
        jobs = [
            blocker,
            running("r", [("n1", 8)], 0, 7200),
            pending("big", 16, 10, walltime_s=3600),
            pending("small", 8, 4999, walltime_s=36_000),
        ]
        decisions = schedule(cluster, jobs, 5000, config, price=100.0)
        assert decisions.protected == {"big"}, blocker.id
        assert waits(decisions)["big"].reserved_start == 7200
        assert "small" not in starts(decisions)  # it would outlast big's reservation


def test_reasons_tell_a_missing_node_from_an_impossible_job():
    cluster = [SchedNode("n0", 8, drained=True), SchedNode("n1", 8, labels={"pool": "train"})]
    jobs = [
        pending("pinned", 8, 0, nodes=("n0",)),
        pending("two", 16, 1),
        pending("nowhere", 4, 2, labels=(("pool", "zzz"),)),
        pending("huge", 64, 3),
    ]
    reasons = {job_id: w.reason for job_id, w in waits(schedule(cluster, jobs, 10, EASY)).items()}
    assert reasons["pinned"].startswith("waiting for nodes that are down, drained or unhealthy")
    assert "node set n0" in reasons["pinned"]
    assert reasons["two"].startswith("waiting for nodes that are down, drained or unhealthy")
    assert reasons["nowhere"] == "can never run here: no node matches its labels pool=zzz"
    assert reasons["huge"] == "can never run here: needs 8 nodes with 8 free GPUs, and the cluster has fewer"


def test_backfill_reason_mentions_reservations_only_when_there_are_some():
    cluster = nodes(2)
    jobs = [running("r", [("n0", 8)], 0, 1000), pending("big", 16, 0), pending("small", 8, 5, walltime_s=100)]
    with_reservation = starts_with_reasons(schedule(cluster, jobs, 10, EASY))
    assert with_reservation["small"].endswith("it delays no reservation")
    without = starts_with_reasons(schedule(cluster, jobs, 10, dataclasses.replace(EASY, reservations=0)))
    assert without["small"] == "backfilled on n1, ahead of jobs that do not fit yet"


def starts_with_reasons(decisions):
    return {s.job_id: s.reason for s in decisions.starts}


def test_unknown_policy_names_suggest_the_closest():
    from factoryctl.errors import UsageError
    from factoryctl.scheduler.policy import policy_named

    assert policy_named("EASY") is EASY
    with pytest.raises(UsageError) as caught:
        policy_named("eazy")
    assert caught.value.hint == "choose from fifo, sjf, easy, default; did you mean easy?"


def test_preemption_stops_only_jobs_whose_gpus_help():
    config = SchedulerConfig(preemption=True)

    def victims(cluster, jobs):
        return {p.job_id for p in schedule(cluster, jobs, 10, config).preemptions}

    three = nodes(3)
    # vip may only use n2: the younger job on n0 frees nothing it can use.
    pinned = [
        running("young", [("n0", 8)], 9, 1000),
        running("old", [("n2", 8)], 0, 1000),
        running("guard", [("n1", 8)], 0, 1000, priority=9),
        pending("vip", 8, 5, priority=5, nodes=("n2",)),
    ]
    assert victims(three, pinned) == {"old"}
    # Stopping the 4-GPU job beside a high-priority one frees half a node: useless once old8 is stopped.
    shared = [
        running("young4", [("n0", 4)], 9, 1000),
        running("hp4", [("n0", 4)], 0, 1000, priority=9),
        running("old8", [("n1", 8)], 0, 1000),
        running("guard", [("n2", 8)], 0, 1000, priority=9),
        pending("vip", 8, 5, priority=5),
    ]
    assert victims(three, shared) == {"old8"}
    # A job on a drained node frees nothing the scheduler may use.
    drained = [SchedNode("n0", 8, drained=True), SchedNode("n1", 8)]
    on_drained = [
        running("ondrained", [("n0", 8)], 9, 1000),
        running("old", [("n1", 8)], 0, 1000),
        pending("vip", 8, 5, priority=5),
    ]
    assert victims(drained, on_drained) == {"old"}
