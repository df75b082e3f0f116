"""A pass given a `QueueIndex` (what the simulator keeps between passes) decides exactly what it decides without one.

The index only saves the pass from walking a deep queue; any difference in the outcome would be a scheduling bug
that shows in the simulator alone, so the two are compared on random clusters, queues and protected sets.
"""

from __future__ import annotations

import dataclasses
import random
import time
from bisect import bisect_left
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sched_properties import cluster_state

from factoryctl.scheduler.core import Candidate, PassOutcome, QueueIndex, age_order, gpu_seconds, plan
from factoryctl.scheduler.decide import _build
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.preempt_replay import PreemptingReplay
from factoryctl.scheduler.shapequeue import ShapeQueue
from factoryctl.scheduler.simulate import cluster_nodes, drive
from factoryctl.scheduler.trace import TraceJob

NOW = 100.0


def _index(fm: FreeMap, queue: list[Candidate], sorted_queue: bool = True) -> QueueIndex:
    """The index as a caller that kept it up to date would hold it, computed here from scratch.

    The shape queues only for a queue sorted by key, as `QueueIndex.by_shape` requires.
    """
    shapes: dict[tuple[int, int], float] = {}
    by_shape: dict[tuple[int, int], ShapeQueue] = {}
    for job in queue:
        shape = (job.nodes, job.gpus)
        shapes[shape] = min(job.walltime, shapes.get(shape, job.walltime))
        by_shape.setdefault(shape, ShapeQueue()).add(job)
    by_age = sorted(queue, key=age_order)
    return QueueIndex(
        shapes,
        by_age,
        {job.id: job for job in queue},
        gpu_seconds((j.num_gpus, j.walltime) for j in queue),
        by_shape if sorted_queue else None,
        walltimes=sorted(job.walltime for job in queue) if sorted_queue else None,  # unsorted: the guard sorts them
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
    index = _index(fm, queue, sorted_queue=shuffle_seed is None) if indexed else None
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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=cluster_state(),
    config=st.sampled_from(
        [
            POLICIES["easy"],
            POLICIES["default"],
            dataclasses.replace(POLICIES["default"], starve_after_s=0.0, starve_drain_factor=0.0),
            SchedulerConfig(reservations=2, reserve_starving_only=False, starve_after_s=None, protect_oldest=None),
            SchedulerConfig(reservations=3, starve_after_s=0.0, starve_drain_factor=0.0, protect_oldest=2),
        ]
    ),
    held_picks=st.lists(st.integers(0, 11), max_size=3),
)
def test_backfill_through_the_shape_queues_starts_what_the_walk_starts(state, config, held_picks):
    """Once no job can take a reservation, the pass tries jobs found through `QueueIndex.by_shape` (sorted queue)."""
    held = {f"p{pick}" for pick in held_picks}
    without = _run(state, config, held, None, indexed=False)
    assert _run(state, config, held, None, indexed=True) == without


def test_a_backfilling_pass_does_not_walk_a_deep_queue():
    """The head waits for a reservation, thousands of jobs that cannot fit follow, and one small job at the end
    can start: the pass must find it without reading the queue (replays of an overloaded cluster were quadratic)."""
    config = POLICIES["easy"]

    def job(name: str, gpus: int, nodes: int, seq: int) -> Candidate:
        return Candidate(name, gpus * nodes, nodes, gpus, 100.0, 0.0, config.order_key(0.0, 100.0, 0, seq))

    queue = [job("head", 8, 2, 0), *(job(f"big{i}", 8, 1, i + 1) for i in range(5000)), job("small", 2, 1, 9999)]
    read = 0

    def counted():
        nonlocal read
        for candidate in queue:
            read += 1
            yield candidate

    outcomes = []
    for index in (None, _index(FreeMap([], [], []), queue)):
        fm = FreeMap(["n1", "n2"], [8, 8], ["", ""])
        fm.take(0, 8)
        fm.take(1, 4)
        running = [(1000.0, 0, ((0, 8),)), (5000.0, 1, ((1, 4),))]
        read = 0
        outcomes.append((_summary(plan(fm, counted(), running, NOW, config, index=index)), read))
    (walked, walked_read), (indexed, indexed_read) = outcomes
    assert walked == indexed == ([("small", (1,), True)], set(), "head")
    assert walked_read == len(queue)
    assert indexed_read <= 2


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 400), st.integers(1, 50)), max_size=400),
    starts=st.lists(st.integers(0, 60), max_size=3).map(sorted),
    after=st.one_of(st.none(), st.integers(-1, 401)),
)
def test_a_shape_queue_keeps_its_jobs_in_key_order_and_finds_the_next_in_a_bucket(ops, starts, after):
    queued: dict[int, Candidate] = {}
    shaped = ShapeQueue()
    for add, seq, walltime in ops:
        if add and seq not in queued:
            queued[seq] = Candidate(f"j{seq}", 1, 1, 1, float(walltime), 0.0, (float(seq), 0.0, seq))
            shaped.add(queued[seq])
        elif not add and seq in queued:
            assert shaped.remove(queued.pop(seq))
    ordered = [queued[seq] for seq in sorted(queued)]
    assert shaped.jobs() == ordered
    assert len(shaped) == len(ordered)
    key = None if after is None else (float(after), 0.0, after)
    for bucket in range(len(starts) + 1):
        found = shaped.first_after(key, bucket, 10.0, [float(s) for s in starts])
        expected = [
            job
            for job in ordered
            if (key is None or job.key > key) and bisect_left(starts, 10.0 + job.walltime) == bucket
        ]
        assert found == (expected[0] if expected else None)


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
