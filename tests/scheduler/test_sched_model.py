"""The job model, gang shapes and the free-GPU index."""

from __future__ import annotations

import pytest

from factoryctl.errors import FactoryError, UsageError
from factoryctl.model.jobs import DEFAULT_WALLTIME_S, GpuAllocation, Job, JobSpec, JobState, Placement, SchedNode
from factoryctl.scheduler.core import starve_threshold
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig, gang_shape, policy_named


def test_job_spec_defaults_and_walltime():
    spec = JobSpec(4)
    assert spec.walltime == DEFAULT_WALLTIME_S
    assert JobSpec(4, walltime_s=60).walltime == 60


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_gpus": 0},
        {"num_gpus": 12, "gpus_per_node": 5},
        {"num_gpus": 4, "walltime_s": -1},
        {"num_gpus": 2, "gpus_per_node": 0},
    ],
)
def test_job_spec_rejects_impossible_shapes(kwargs):
    with pytest.raises(UsageError):
        JobSpec(**kwargs)


def test_job_json_follows_design_fields():
    job = Job(
        "j1",
        JobSpec(16, name="train", user="ana"),
        0.0,
        JobState.RUNNING,
        started_at=60.0,
        allocation=(GpuAllocation("n1", 8), GpuAllocation("n2", 8)),
    )
    data = job.as_json()
    assert list(data) == [
        "id", "name", "user", "state", "reason", "num_gpus", "gpus_per_node", "priority", "walltime_s", "command",
        "cwd", "allocation", "ranks", "restarts", "submitted_at", "started_at", "ended_at", "stopping", "energy_kwh",
        "cost",
    ]  # fmt: skip
    assert data["allocation"] == [{"node": "n1", "gpus": 8}, {"node": "n2", "gpus": 8}]
    assert data["submitted_at"] == "1970-01-01T00:00:00.000Z"
    assert data["ended_at"] is None
    assert data["stopping"] is None  # set while the executor stops it for a higher-priority job (StopRequest)
    assert job.placement.render() == "n1:8 n2:8"
    assert job.evolve(state=JobState.SUCCEEDED).state.terminal


def test_job_states():
    assert JobState.PENDING.waiting
    assert JobState.DEFERRED.waiting
    assert JobState.STARTING.active
    assert JobState.RUNNING.active
    assert not JobState.CANCELLED.active
    assert Placement((GpuAllocation("a", 3),)).num_gpus == 3


def test_sched_node_schedulable():
    assert SchedNode("a", 8).schedulable
    assert not SchedNode("a", 8, state="down").schedulable
    assert not SchedNode("a", 8, drained=True).schedulable
    assert not SchedNode("a", 8, healthy=False).schedulable
    assert SchedNode("a", 8, state="degraded").schedulable


@pytest.mark.parametrize(
    ("gpus", "per_node", "node_size", "shape"),
    [(1, None, 8, (1, 1)), (8, None, 8, (1, 8)), (16, None, 8, (2, 8)), (12, None, 8, (2, 6)), (12, 6, 8, (2, 6)),
     (32, None, 8, (4, 8)), (8, 2, 8, (4, 2))],
)  # fmt: skip
def test_gang_shape(gpus, per_node, node_size, shape):
    assert gang_shape(gpus, per_node, node_size) == shape


def test_policies_and_unknown_policy():
    assert set(POLICIES) == {"fifo", "sjf", "easy", "default"}
    with pytest.raises(UsageError, match="unknown policy"):
        policy_named("lottery")
    with pytest.raises(UsageError):
        SchedulerConfig(reservations=-1)


def test_aging_order_is_stable_and_priority_buys_time():
    config = SchedulerConfig(priority_unit_s=3600, size_weight=1.0)
    short_late = config.order_key(submitted_at=1000, walltime=60, priority=0, seq=2)
    long_early = config.order_key(submitted_at=0, walltime=7200, priority=0, seq=1)
    assert short_late < long_early
    urgent = config.order_key(submitted_at=0, walltime=7200, priority=2, seq=1)
    assert urgent < short_late


def test_starve_threshold_is_the_floor_or_the_scaled_drain_time():
    config = SchedulerConfig(starve_after_s=600.0, starve_drain_factor=0.5)
    # (8 x 1000 + 16 x 3000) GPU-seconds ahead, on 16 GPUs, drain in 3500 s; half of that beats the 600 s floor.
    assert starve_threshold(config, 8 * 1000.0 + 16 * 3000.0, 16) == 1750.0
    assert starve_threshold(config, 8 * 1000.0, 16) == 600.0
    assert starve_threshold(SchedulerConfig(starve_after_s=600.0, starve_drain_factor=0.0), 56000.0, 16) == 600.0
    with pytest.raises(UsageError):
        SchedulerConfig(starve_drain_factor=-1.0)


def test_freemap_take_give_and_overcommit():
    fm = FreeMap(["a", "b"], [8, 8], ["", ""])
    fm.take(0, 6)
    assert fm.free == [2, 8]
    assert fm.count_at_least(3) == 1
    with pytest.raises(FactoryError, match="scheduler bug"):
        fm.take(0, 3)
    fm.give(0, 6)
    with pytest.raises(FactoryError):
        fm.give(0, 1)


def test_freemap_best_fit_picks_tightest_node():
    fm = FreeMap(["a", "b", "c"], [8, 8, 8], ["", "", ""])
    fm.take(0, 4)
    fm.take(1, 6)
    assert fm.place(1, 2) == [1]
    assert fm.place(1, 3) == [0]
    assert fm.place(1, 8) == [2]
    assert fm.place(2, 8) is None


def test_freemap_multi_node_prefers_one_rack():
    fm = FreeMap([f"n{i}" for i in range(6)], [8] * 6, ["a", "a", "b", "b", "b", "c"])
    fm.take(0, 8)
    chosen = fm.place(2, 8)
    assert chosen is not None
    assert {fm.groups[i] for i in chosen} == {"b"}
    chosen3 = fm.place(3, 8)
    assert chosen3 == [2, 3, 4]
    chosen4 = fm.place(4, 8)
    assert chosen4 is not None
    assert len({fm.groups[i] for i in chosen4}) == 2


def test_freemap_caps_and_allowed():
    fm = FreeMap(["a", "b"], [8, 8], ["", ""])
    assert fm.fits(1, 8, caps={0: 2})
    assert not fm.fits(2, 8, caps={0: 2})
    assert fm.place(1, 8, caps={0: 2}) == [1]
    assert fm.place(1, 4, allowed=frozenset({1})) == [1]
    assert not fm.fits(1, 9)


def test_percentile_interpolates_like_numpy():
    from factoryctl.scheduler.metrics import percentile

    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_cluster_nodes_names_and_racks():
    from factoryctl.scheduler.simulate import cluster_nodes

    cluster = cluster_nodes(1200, 8, rack_size=500)
    assert (cluster[0].name, cluster[-1].name) == ("n0001", "n1200")
    assert (cluster[0].rack, cluster[499].rack, cluster[500].rack) == ("r01", "r01", "r02")
    assert cluster_nodes(3, 4)[2].name == "n003"
    assert cluster_nodes(3, 4)[2].rack is None


def test_inconsistent_running_allocation_is_an_error():
    from helpers import nodes, running

    from factoryctl.scheduler.decide import schedule

    jobs = [running("a", [("n0", 6)], 0, 100), running("b", [("n0", 6)], 0, 100)]
    with pytest.raises(FactoryError, match="more GPUs allocated"):
        schedule(nodes(1), jobs, 10)
