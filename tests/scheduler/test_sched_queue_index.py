"""A pass given a `QueueIndex` (what the simulator keeps between passes) decides exactly what it decides without one.

The index only saves the pass from walking a deep queue; any difference in the outcome would be a scheduling bug
that shows in the simulator alone, so the two are compared on random clusters, queues and protected sets.
"""

from __future__ import annotations

import dataclasses
import random
import time
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sched_properties import cluster_state

from factoryctl.scheduler.core import Candidate, PassOutcome, QueueIndex, age_order, gpu_seconds, plan
from factoryctl.scheduler.decide import _build
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.preempt_replay import PreemptingReplay
from factoryctl.scheduler.simulate import cluster_nodes, drive
from factoryctl.scheduler.trace import TraceJob

NOW = 100.0


def _index(fm: FreeMap, queue: list[Candidate]) -> QueueIndex:
    """The index as a caller that kept it up to date would hold it, computed here from scratch."""
    shapes: dict[tuple[int, int], float] = {}
    for job in queue:
        shape = (job.nodes, job.gpus)
        shapes[shape] = min(job.walltime, shapes.get(shape, job.walltime))
    by_age = sorted(queue, key=age_order)
    return QueueIndex(
        shapes, by_age, {job.id: job for job in queue}, gpu_seconds((j.num_gpus, j.walltime) for j in queue)
    )


def _summary(outcome: PassOutcome) -> tuple[object, ...]:
    """What the pass decided. Not its reservations: with the index's shapes a pass stops as soon as nothing more
    could start, possibly before reserving for the job it stopped at; a reservation only matters for the starts
    after it, and there are none."""
    return (
        [(s.job.id, s.chosen, s.backfilled) for s in outcome.started],
        outcome.protected,
        outcome.first_short.id if outcome.first_short else None,
    )


def _run(state, config: SchedulerConfig, held: set[str], shuffle_seed: int | None, indexed: bool) -> tuple:
    nodes, jobs = state
    fm, running, queue = _build(nodes, jobs, NOW, config)
    queue = [job for job in queue if fm.hostable(job.nodes, job.gpus, job.allowed)]  # the index's promise
    if shuffle_seed is not None:  # a queue out of key order: the pass must not rely on it being sorted
        random.Random(shuffle_seed).shuffle(queue)
    index = _index(fm, queue) if indexed else None
    return _summary(plan(fm, queue, running, NOW, config, protected=held, index=index))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=cluster_state(),
    floor=st.sampled_from([0.0, 30.0, 600.0]),
    drain=st.sampled_from([0.0, 0.5, 3.0]),
    protect=st.sampled_from([1, 2, None]),
    held_picks=st.lists(st.integers(0, 11), max_size=3),
    shuffle_seed=st.one_of(st.none(), st.integers(0, 3)),
)
def test_a_pass_with_the_index_decides_what_it_decides_without(state, floor, drain, protect, held_picks, shuffle_seed):
    config = SchedulerConfig(starve_after_s=floor, starve_drain_factor=drain, protect_oldest=protect)
    held = {f"p{pick}" for pick in held_picks}
    without = _run(state, config, held, shuffle_seed, indexed=False)
    assert _run(state, config, held, shuffle_seed, indexed=True) == without


def test_jobs_sharing_a_key_are_each_started_once():
    """`plan`'s contract does not forbid equal keys: the protected job is taken out of the queue, not its twin."""
    fresh = Candidate("A", 8, 1, 8, 100.0, 95.0, (0.0, 0.0, 1))
    starving = Candidate("B", 8, 1, 8, 100.0, 0.0, (0.0, 0.0, 1))
    config = SchedulerConfig(starve_after_s=10.0, starve_drain_factor=0.0, protect_oldest=None)
    outcome = plan(FreeMap(["n1", "n2"], [8, 8], ["", ""]), [fresh, starving], [], NOW, config)
    assert [s.job.id for s in outcome.started] == ["B", "A"]


class _CheckedReplay(PreemptingReplay):
    """The preempting replay, checking before every pass that its index describes exactly its queue."""

    def schedule(self, now: float, explain: bool = False) -> PassOutcome:
        assert self.by_age == sorted(self.queue, key=age_order)
        assert self.queued == {job.id: job for job in self.queue}
        exact = sum((job.num_gpus * Fraction(job.walltime) for job in self.queue), Fraction(0))
        assert self.gpu_s == exact
        assert float(self.gpu_s) == gpu_seconds((job.num_gpus, job.walltime) for job in self.queue)
        return super().schedule(now, explain)


def test_the_replays_index_follows_its_queue_through_preemptions_and_fractional_walltimes():
    rng = random.Random(5)
    trace = [
        TraceJob(f"j{i}", round(i * 700 * rng.random(), 3), d, g, None, rng.choice([0, 0, 5]), d)
        for i, (d, g) in enumerate((rng.uniform(50, 90000) / 3, rng.choice([1, 2, 4, 8, 16])) for _ in range(120))
    ]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=120.0)
    replay = _CheckedReplay(cluster_nodes(3, 8), config, time.process_time)
    assert drive(replay, trace) == []
    assert replay.preempted()[0] > 0  # the requeue path ran
    assert not replay.queue
