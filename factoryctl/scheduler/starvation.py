"""The starvation guard: which queued jobs a pass protects (serves first, oldest first) and when a job starves.

Apart from the pass's loop in `core` because it is a policy of its own with its own arithmetic (the drain-time
threshold, the exact GPU-second sum) and its own shortcuts for a caller's `QueueIndex`; the loop only asks it for
the queue in protected-first order. `core` re-exports `age_order` and `starve_threshold`.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import NamedTuple

from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.gangs import gpu_seconds
from factoryctl.scheduler.passdata import Candidate, is_deferred, queue_key
from factoryctl.scheduler.policy import SchedulerConfig
from factoryctl.scheduler.queueindex import QueueIndex


def age_order(job: Candidate) -> tuple[float, int]:
    """Oldest first: submission time, then the queue's sequence number (the starvation guard's order)."""
    return (job.submitted_at, job.key[2])


def starve_threshold(
    config: SchedulerConfig, queued_gpu_s: float, total_gpus: int, median_walltime: float | None = None
) -> float:
    """How long a job may wait before it is starving: the larger of the floor and the queue's drain time.

    The drain time is the queued GPU-seconds (walltimes) over the cluster's GPUs: how long the cluster would take
    to run the whole queue back to back. Scaled by `starve_drain_factor`, it lets the threshold follow the load: a
    light queue protects a job after the floor, a deep backlog lets short jobs overtake for longer before the old
    ones are served in submission order. New arrivals raise it, which is why protection is sticky (`core.plan`'s
    `protected`): a job that was starving stays protected until it starts, whatever arrives after. The floor
    follows the queue's time scale (`starving_floor`).
    """
    floor = starving_floor(config, median_walltime)
    if not config.starve_drain_factor or total_gpus <= 0:
        return floor
    return max(floor, config.starve_drain_factor * queued_gpu_s / total_gpus)


def starving_floor(config: SchedulerConfig, median_walltime: float | None) -> float:
    """The fixed floor (`starve_after_s`), lowered to `starve_walltime_factor` x the queued median walltime.

    A fixed floor (`starve_after_s`, 12 hours by default) suits jobs that run for a day; on a queue of jobs that run
    for minutes it never fires while the drain time stays short, and a large gang then waits until enough nodes
    happen to empty together (ten times EASY's longest wait on such traces). Where `starve_walltime_factor` x the
    median walltime is longer, the floor stays `starve_after_s`.
    """
    floor = config.starve_after_s or 0.0
    if config.starve_walltime_factor and median_walltime is not None:
        return min(floor, config.starve_walltime_factor * median_walltime)
    return floor


def median_of_sorted(values: Sequence[float]) -> float | None:
    """The median of sorted `values` (the mean of the middle two for an even count; None for none)."""
    if not values:
        return None
    middle = len(values) // 2
    return (values[middle - 1 + len(values) % 2] + values[middle]) / 2


class StarvationGuard(NamedTuple):
    """What the starvation guard needs to know about the pass: the time, the policy, the cluster and the price."""

    now: float
    config: SchedulerConfig
    fm: FreeMap
    price: float | None

    def can_run_now(self, job: Candidate) -> bool:
        """Neither deferred for its price nor too large for the schedulable nodes: protecting it would help."""
        return self.fm.hostable(job.nodes, job.gpus, job.allowed) and not (
            job.deferrable and is_deferred(job, self.now, self.price)
        )


def _hostable_work(queue: Sequence[Candidate], fm: FreeMap) -> tuple[float, list[float]]:
    """The queued jobs the schedulable nodes could ever hold: GPU-seconds as `gpu_seconds` sums them, walltimes sorted.

    The walltimes give the floor's median. A float sum is exact (so the same) while walltimes are whole seconds and
    the total is below 2**53: the cheap
    common case (this runs over 10,000 jobs in the live pass).
    """
    hosts, top = fm.hosts, len(fm.hosts)
    total, whole, walltimes = 0.0, True, []
    for job in queue:
        gpus = job.gpus
        if (
            gpus < top and job.nodes <= hosts[gpus]
            if job.allowed is None
            else fm.can_host(job.nodes, gpus, job.allowed)
        ):
            total += job.num_gpus * job.walltime
            whole = whole and job.walltime % 1.0 == 0.0
            walltimes.append(job.walltime)
    walltimes.sort()
    if whole and total < 2.0**53:
        return total, walltimes
    exact = gpu_seconds((j.num_gpus, j.walltime) for j in queue if fm.hostable(j.nodes, j.gpus, j.allowed))
    return exact, walltimes


def starving_first(
    queue: Iterable[Candidate], guard: StarvationGuard, held: Collection[str], index: QueueIndex | None = None
) -> tuple[Iterable[Candidate], set[str]]:
    """Move the protected jobs to the front, oldest first, and return the new order with their ids.

    Protected are the jobs of `held` (protected by an earlier pass: never withdrawn) and, up to `protect_oldest`
    in all, the oldest jobs that waited `starve_threshold`. At one instant every job has the same threshold, so
    the starving jobs are the oldest ones. A job that cannot run now (deferred for its price, or larger than the
    schedulable nodes) takes no protection slot: it would block the guard. One too large for the schedulable nodes
    does not count in the drain time or the floor's median either; one deferred for its price does (its work is
    queued, and the simulator's index, kept between passes, could not follow a price that moves).
    """
    ordered = queue if isinstance(queue, list) else list(queue)
    if not held:
        kept = []
    elif index is None:
        kept = [job for job in ordered if job.id in held]
    else:
        kept = [index.by_id[job_id] for job_id in held if job_id in index.by_id]
    limit = len(ordered) if guard.config.protect_oldest is None else guard.config.protect_oldest
    room = limit - sum(1 for job in kept if guard.can_run_now(job))
    fresh = _newly_starving(ordered, guard, held, room, index) if room > 0 else []
    moved = sorted(kept + fresh, key=age_order)
    if not moved:
        return ordered, set()
    return itertools.chain(moved, _without(ordered, moved)), {job.id for job in moved}


def _newly_starving(
    ordered: list[Candidate], guard: StarvationGuard, held: Collection[str], room: int, index: QueueIndex | None
) -> list[Candidate]:
    """Up to `room` of the oldest jobs that waited the starving threshold and could run now (held ones aside)."""
    config = guard.config
    oldest: Iterator[Candidate]
    median: float | None = None
    if index is None:
        queued: float | None = None
        if config.starve_walltime_factor:  # the floor needs the queue's median first
            queued, walltimes = _hostable_work(ordered, guard.fm)
            median = median_of_sorted(walltimes)
        floor = guard.now - starving_floor(config, median)
        waited = [(job.submitted_at, job.key[2], job) for job in ordered if job.submitted_at <= floor]
        if not waited:  # nobody waited the floor: not worth the drain-time sum
            return []
        heapq.heapify(waited)
        oldest = (heapq.heappop(waited)[2] for _ in range(len(waited)))
        if queued is None:
            queued = _hostable_work(ordered, guard.fm)[0]
    else:
        if config.starve_walltime_factor:
            median = median_of_sorted(
                index.walltimes if index.walltimes is not None else sorted(job.walltime for job in index.by_age)
            )
        if not index.by_age or index.by_age[0].submitted_at > guard.now - starving_floor(config, median):
            return []
        oldest, queued = iter(index.by_age), index.gpu_s
    starving_before = guard.now - starve_threshold(config, queued, sum(guard.fm.totals), median)
    fresh: list[Candidate] = []
    for job in oldest:
        if len(fresh) >= room or job.submitted_at > starving_before:
            break
        if job.id not in held and guard.can_run_now(job):
            fresh.append(job)
    return fresh


def _without(ordered: list[Candidate], moved: list[Candidate]) -> Iterable[Candidate]:
    """`ordered` (sorted by key, as a queue is) without the `moved` jobs: slices between them, not a filter."""
    spots = sorted(bisect_left(ordered, job.key, key=queue_key) for job in moved)
    if any(
        at >= len(ordered) or ordered[at] is not job
        for at, job in zip(spots, sorted(moved, key=queue_key), strict=True)
    ):
        ids = {job.id for job in moved}  # not sorted by key after all: filter
        return (job for job in ordered if job.id not in ids)
    bounds = [-1, *spots, len(ordered)]  # lazily: copying the slices would cost O(queue) even when a pass stops early
    at = ordered.__getitem__
    return itertools.chain.from_iterable(map(at, range(a + 1, b)) for a, b in itertools.pairwise(bounds))
