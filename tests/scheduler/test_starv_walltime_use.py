"""The starving threshold scaled by the share of their walltimes jobs really run (`walltime_use`).

Walltimes are user estimates, rounded up; the floor's median and the drain time are computed from them, so with
walltimes four times the run time protection came four times too late. The replay learns the share from the jobs
that ended; with exact walltimes it stays 1 and the schedule is the one without learning.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from helpers import nodes, pending, running

from factoryctl.errors import UsageError
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.scheduler.decide import learned_config, schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import cluster_nodes, drive, new_replay, simulate
from factoryctl.scheduler.starvation import learned_walltime_use
from factoryctl.scheduler.trace import TraceJob

DEFAULT = POLICIES["default"]
NOT_LEARNED = dataclasses.replace(DEFAULT, walltime_use_window=0)


def waits(decisions):
    return {w.job_id: w for w in decisions.waits}


def test_the_learned_share_is_the_median_over_the_last_finished_jobs():
    finished = [(900.0, 3600.0), (1800.0, 3600.0), (3600.0, 3600.0)]
    assert learned_walltime_use(finished, 3) == 0.5
    assert learned_walltime_use(finished, 2) == 0.75  # the last two only
    assert learned_walltime_use(finished, 4) is None  # fewer finished jobs than the window: nothing learned yet
    assert learned_walltime_use([], 3) is None
    assert learned_walltime_use(finished, 0) is None  # not learned
    # A job without a walltime is not counted; one that ran past its walltime counts as 1.
    assert learned_walltime_use([(50.0, 0.0), (5000.0, 3600.0), (100.0, 400.0)], 2) == 0.625


def test_over_estimated_walltimes_protect_a_gang_as_soon_as_exact_ones_would():
    """The live pass with `walltime_use` 0.5: the floor and the drain time halve, so the gang starves sooner."""
    cluster = nodes(2)
    jobs = [
        running("r", [("n0", 4)], 0, 900),
        pending("gang", 16, 0, walltime_s=1200),
        *(pending(f"s{k}", 4, 100 + k, walltime_s=600) for k in range(3)),
    ]
    # Taken at their word: floor 300 s, drain time 26,400 GPU-s / 16 GPUs halved, 825 s: at 500 s not yet starving.
    assert waits(schedule(cluster, jobs, 500, DEFAULT))["gang"].reserved_start is None
    # Half of every walltime is used: floor 150 s, drain 412.5 s; the gang is starving and reserved where r ends.
    halved = schedule(cluster, jobs, 500, dataclasses.replace(DEFAULT, walltime_use=0.5))
    assert waits(halved)["gang"].reserved_start == 900


def _over_estimated() -> list[TraceJob]:
    """4-GPU jobs running 100 s of a 400 s walltime keep 2 x 8 GPUs full; a 16-GPU gang arrives at 10 s."""
    jobs = [TraceJob(f"s{k}", 25.0 * k, 100.0, 4, None, 0, 400.0) for k in range(40)]
    return [*jobs, TraceJob("gang", 10.0, 100.0, 16, None, 0, 400.0)]


def test_the_replay_learns_the_share_at_each_job_end_and_protects_the_gang_sooner():
    config = dataclasses.replace(DEFAULT, walltime_use_window=3)
    for until, use in [(125.0, 1.0), (150.0, 0.25)]:  # two jobs ended: too few; three: each ran a quarter
        replay = new_replay(cluster_nodes(2, 8), config)
        drive(replay, _over_estimated(), until=until)
        assert replay.learned_config(until).walltime_use == use
    learned = {r.job_id: r.start_s for r in simulate(_over_estimated(), cluster_nodes(2, 8), config).records}
    fixed = {r.job_id: r.start_s for r in simulate(_over_estimated(), cluster_nodes(2, 8), NOT_LEARNED).records}
    assert learned["gang"] == 225.0  # starving at 150 s, when three ends taught 0.25 (its threshold fell to 50 s)
    assert fixed["gang"] == 350.0  # taken at their word, the walltimes protect it after 200 s of waiting


def test_sched_explain_shows_the_starts_of_the_learning_replay():
    """`sched explain` replays to the instant and runs that pass itself: it must learn what the replay had learned."""
    config = dataclasses.replace(DEFAULT, walltime_use_window=3)
    cluster = cluster_nodes(2, 8)
    records = simulate(_over_estimated(), cluster, config).records
    for at in sorted({r.start_s for r in records}):
        found = explain_at(_over_estimated(), cluster, config, at).jobs
        assert {j.job_id for j in found if j.state == "STARTING"} == {r.job_id for r in records if r.start_s == at}


def test_exact_walltimes_give_the_schedule_without_learning():
    rng = random.Random(5)
    trace = [
        TraceJob(f"j{i}", 30.0 * i, float(d), rng.choice([1, 2, 4, 8, 16]), None, 0, float(d))
        for i in range(300)
        for d in [rng.randint(0, 3000)]
    ]
    learned = simulate(trace, cluster_nodes(3, 8), DEFAULT)
    assert learned.records == simulate(trace, cluster_nodes(3, 8), NOT_LEARNED).records
    replay = new_replay(cluster_nodes(3, 8), DEFAULT)
    drive(replay, trace)
    assert replay.pass_config is DEFAULT  # every share was 1: the policy itself ran every pass


@pytest.mark.parametrize(("use", "window"), [(1.5, 100), (-0.1, 100), (0.5, -1)])
def test_a_share_outside_0_to_1_or_a_negative_window_is_refused(use, window):
    with pytest.raises(UsageError, match="walltime_use"):
        SchedulerConfig(walltime_use=use, walltime_use_window=window)


def test_the_live_pass_learns_the_share_from_the_finished_jobs_it_is_given():
    """`schedule()` learns `walltime_use` from the finished jobs among `jobs`, as the replay does at their ends."""
    cluster = nodes(2)
    queue = [
        running("r", [("n0", 4)], 0, 900),
        pending("gang", 16, 0, walltime_s=1200),
        *(pending(f"s{k}", 4, 100 + k, walltime_s=600) for k in range(3)),
    ]
    config = dataclasses.replace(DEFAULT, walltime_use_window=4)

    def finished(count: int, state: JobState = JobState.SUCCEEDED) -> list[Job]:  # each ran half its 200 s walltime
        spec = JobSpec(num_gpus=1, walltime_s=200)
        return [Job(f"f{k}", spec, 0, state, started_at=-400 + k, ended_at=-300 + k) for k in range(count)]

    assert waits(schedule(cluster, [*queue, *finished(4)], 500, config))["gang"].reserved_start == 900
    assert waits(schedule(cluster, [*queue, *finished(3)], 500, config))["gang"].reserved_start is None  # too few
    cancelled = finished(4, JobState.CANCELLED)  # stopped by someone: says nothing of walltimes
    assert waits(schedule(cluster, [*queue, *cancelled], 500, config))["gang"].reserved_start is None
    crashed = finished(4, JobState.FAILED)  # failed half-way (a crash loop): says nothing of walltimes either
    assert waits(schedule(cluster, [*queue, *crashed], 500, config))["gang"].reserved_start is None
    stopped = [
        Job(f"w{k}", JobSpec(num_gpus=1, walltime_s=200), 0, JobState.FAILED, started_at=-400 + k, ended_at=-199 + k)
        for k in range(2)
    ]
    mixed = [*queue, *finished(2), *stopped]  # two ran half, two were stopped at their walltime: the share is 0.75
    assert learned_config(config, mixed).walltime_use == 0.75
