"""A pass given a `QueueIndex` (what the simulator keeps between passes) decides exactly what it decides without one.

The index only saves the pass from walking a deep queue; any difference in the outcome would be a scheduling bug
that shows in the simulator alone, so the two are compared on random clusters, queues and protected sets.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factoryctl.scheduler.core import Candidate, PassOutcome, QueueIndex, age_order, plan
from factoryctl.scheduler.decide import _build
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import SchedulerConfig
from tests.scheduler.test_sched_properties import cluster_state

NOW = 100.0


def _index(fm: FreeMap, queue: list[Candidate]) -> QueueIndex:
    """The index as a caller that kept it up to date would hold it, computed here from scratch."""
    shapes: dict[tuple[int, int], float] = {}
    for job in queue:
        shape = (job.nodes, job.gpus)
        shapes[shape] = min(job.walltime, shapes.get(shape, job.walltime))
    by_age = sorted(queue, key=age_order)
    return QueueIndex(shapes, by_age, {job.id: job for job in queue}, sum(j.num_gpus * j.walltime for j in queue))


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
