"""The starvation guard: which queued jobs a pass protects (serves first, oldest first) and when a job starves.

Apart from the pass's loop in `core` because it is a policy of its own with its own arithmetic (the drain-time
threshold, the exact GPU-second sum, the share of their walltimes jobs really run, learned from finished jobs)
and its own shortcuts for a caller's `QueueIndex`; the loop only asks it for the queue in protected-first order.
`core` re-exports `age_order` and `starve_threshold`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import NamedTuple

from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.gangs import gpu_seconds
from factoryctl.scheduler.passdata import Candidate, is_deferred, queue_key
from factoryctl.scheduler.policy import SchedulerConfig
from factoryctl.scheduler.queueindex import QueueIndex

_SUBMITTED = attrgetter("submitted_at")


def age_order(job: Candidate) -> tuple[float, int]:
    """Oldest first: submission time, then the queue's sequence number (the starvation guard's order)."""
    return (job.submitted_at, job.key[2])


def starve_threshold(
    config: SchedulerConfig, queued_gpu_s: float, total_gpus: int, median_walltime: float | None = None
) -> float:
    """How long a job may wait before it is starving: the larger of the floor and the queue's drain time.

    The drain time is the queued GPU-seconds (walltimes, scaled by `walltime_use`: the share of them jobs really
    run) over the cluster's GPUs: how long the cluster would take to run the whole queue back to back. Scaled by
    `starve_drain_factor`, it lets the threshold follow the load: a light queue protects a job after the floor, a
    deep backlog lets short jobs overtake for longer before the old ones are served in submission order. New
    arrivals raise it, which is why protection is sticky (`core.plan`'s `protected`): a job that was starving stays
    protected until it starts, whatever arrives after. The floor follows the queue's time scale (`starving_floor`).
    A small job's threshold is longer (`small_threshold`).
    """
    floor = starving_floor(config, median_walltime)
    if not config.starve_drain_factor or total_gpus <= 0:
        return floor
    return max(floor, drain_term(config, queued_gpu_s, total_gpus))


def drain_term(config: SchedulerConfig, queued_gpu_s: float, total_gpus: int) -> float:
    """The threshold's drain-time term: `starve_drain_factor` x `walltime_use` x queued GPU-seconds / GPUs (0: none)."""
    if not config.starve_drain_factor or total_gpus <= 0:
        return 0.0
    return config.starve_drain_factor * config.walltime_use * queued_gpu_s / total_gpus


def small_threshold(config: SchedulerConfig, threshold: float, queued_gpu_s: float, total_gpus: int) -> float:
    """A small job's threshold (`is_small`): `threshold`, or `starve_small_drain_factor` x the drain time if longer.

    Half the drain time (`starve_drain_factor`) is a head start: a starving gang's reservation takes time to clear,
    as the nodes it needs empty one job at a time. A small job fits wherever a GPU or two frees, so it starts as soon
    as it is protected and needs no head start. Protected at half the drain time, on a few nodes of 1-GPU jobs whose
    run times vary a thousandfold the oldest job had nearly always waited that long: every freed GPU went to it, and
    the queue ran in submission order, at FIFO's average JCT (2.4 x SJF's on a reviewer's 4-GPU trace). With the
    drain-time term off (`starve_drain_factor` 0) it is off for small jobs too.
    """
    if not config.starve_drain_factor or config.starve_small_drain_factor <= config.starve_drain_factor:
        return threshold
    if total_gpus <= 0:
        return threshold
    return max(threshold, config.starve_small_drain_factor * config.walltime_use * queued_gpu_s / total_gpus)


def starving_before(
    config: SchedulerConfig, now: float, queued_gpu_s: float, total_gpus: int, median_walltime: float | None
) -> tuple[float, float]:
    """Submitted by when a job starves at `now`: any job (`starve_threshold`), and a small one (`small_threshold`)."""
    threshold = starve_threshold(config, queued_gpu_s, total_gpus, median_walltime)
    return now - threshold, now - small_threshold(config, threshold, queued_gpu_s, total_gpus)


def small_shape(nodes: int, gpus: int, node_gpus: int) -> bool:
    """A gang shape fragmentation hardly delays: one node, and one GPU or at most a quarter of `node_gpus`."""
    return nodes == 1 and (gpus == 1 or 4 * gpus <= node_gpus)


def is_small(job: Candidate, fm: FreeMap) -> bool:
    """Whether `job` is small on these nodes (`small_shape` against the largest node): see `small_threshold`."""
    return small_shape(job.nodes, job.gpus, fm.max_gpus)


def starving_floor(config: SchedulerConfig, median_walltime: float | None) -> float:
    """The fixed floor (`starve_after_s`), lowered to `starve_walltime_factor` x the queued median walltime.

    A fixed floor (`starve_after_s`, 12 hours by default) suits jobs that run for a day; on a queue of jobs that run
    for minutes it never fires while the drain time stays short, and a large gang then waits until enough nodes
    happen to empty together (ten times EASY's longest wait on such traces). Where `starve_walltime_factor` x the
    median walltime is longer, the floor stays `starve_after_s`. The median is scaled by `walltime_use` (1 for
    exact walltimes): rounded-up, over-estimated walltimes would otherwise start protection several times too late.
    """
    floor = config.starve_after_s or 0.0
    if config.starve_walltime_factor and median_walltime is not None:
        return min(floor, config.starve_walltime_factor * config.walltime_use * median_walltime)
    return floor


def median_of_sorted(values: Sequence[float]) -> float | None:
    """The median of sorted `values` (the mean of the middle two for an even count; None for none)."""
    if not values:
        return None
    middle = len(values) // 2
    return (values[middle - 1 + len(values) % 2] + values[middle]) / 2


class WalltimeUse:
    """The share of its walltime a job really runs, learned online: the median over the last `window` finished jobs.

    Walltimes are user estimates, rounded up and often several times the run time; the starving threshold is computed
    from them (the floor's median, the drain time), so `SchedulerConfig.walltime_use` scales both by this median.
    It is 1 for exact walltimes (no scaling), and unknown until `window` jobs have finished.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.recent: deque[float] = deque()  # the window's shares, oldest first
        self.ordered: list[float] = []  # the same, sorted: the median

    def add(self, runtime: float, walltime: float) -> None:
        """Count a finished job that ran `runtime` seconds of its `walltime` (none without a positive walltime)."""
        if walltime <= 0 or self.window <= 0:
            return
        share = min(1.0, max(0.0, runtime / walltime))
        self.recent.append(share)
        insort(self.ordered, share)
        if len(self.recent) > self.window:
            del self.ordered[bisect_left(self.ordered, self.recent.popleft())]

    def value(self) -> float | None:
        """The median share once `window` jobs have finished; None before (a median of a few jobs would be noise)."""
        if self.window <= 0 or len(self.recent) < self.window:
            return None
        return median_of_sorted(self.ordered)


def learned_walltime_use(finished: Iterable[tuple[float, float]], window: int) -> float | None:
    """`WalltimeUse` over (run time, walltime) of finished jobs in the order they ended: for a live caller.

    The pass is pure and sees no finished jobs; a caller that has them hands the result to the pass as
    `dataclasses.replace(config, walltime_use=...)`, as the replay does after every job end. None while fewer than
    `window` jobs have finished: the configured `walltime_use` holds.
    """
    use = WalltimeUse(window)
    for runtime, walltime in finished:
        use.add(runtime, walltime)
    return use.value()


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


def _hostable_work(queue: Sequence[Candidate], fm: FreeMap) -> float:
    """The GPU-seconds of the queued jobs the schedulable nodes could ever hold, as `gpu_seconds` sums them.

    A float sum is exact (so the same) while walltimes are whole seconds and the total is below 2**53: the cheap
    common case (this runs over 10,000 jobs in the live pass).
    """
    hosts, top = fm.hosts, len(fm.hosts)
    total, whole = 0.0, True
    for job in queue:
        gpus = job.gpus
        if (
            gpus < top and job.nodes <= hosts[gpus]
            if job.allowed is None
            else fm.can_host(job.nodes, gpus, job.allowed)
        ):
            total += job.num_gpus * job.walltime
            whole = whole and job.walltime % 1.0 == 0.0
    if whole and total < 2.0**53:
        return total
    return gpu_seconds((j.num_gpus, j.walltime) for j in queue if fm.hostable(j.nodes, j.gpus, j.allowed))


def _hostable_median(queue: Sequence[Candidate], fm: FreeMap) -> float | None:
    """The median walltime of the queued jobs the schedulable nodes could ever hold (the floor's median)."""
    hosts, top = fm.hosts, len(fm.hosts)
    walltimes = [
        job.walltime
        for job in queue
        if (
            job.gpus < top and job.nodes <= hosts[job.gpus]
            if job.allowed is None
            else fm.can_host(job.nodes, job.gpus, job.allowed)
        )
    ]
    walltimes.sort()
    return median_of_sorted(walltimes)


def _waited_without_index(ordered: list[Candidate], guard: StarvationGuard) -> Iterator[Candidate]:
    """The jobs that waited the starving threshold, oldest first, for a pass given no `QueueIndex` (the live one).

    Cheapest test first, as most passes protect nobody: the oldest submission against the fixed floor (when the
    floor has no median) and the drain-time term, neither of which any job's threshold undercuts; only past those the
    sorted walltimes of the floor's median, and a heap of just the jobs past their threshold. The thresholds are
    `starve_threshold`'s and, for small jobs, `small_threshold`'s, so the jobs are those a sort of the whole queue
    each pass found.
    """
    config, now, fm = guard.config, guard.now, guard.fm
    if not ordered:
        return iter(())
    first = min(map(_SUBMITTED, ordered))
    if not config.starve_walltime_factor and first > now - starving_floor(config, None):
        return iter(())  # nobody waited the fixed floor: not worth the drain-time sum
    queued, gpus = _hostable_work(ordered, fm), sum(fm.totals)
    drain = drain_term(config, queued, gpus)
    if drain and first > now - drain:
        return iter(())  # nobody waited the drain time: the median cannot matter
    median = _hostable_median(ordered, fm) if config.starve_walltime_factor else None
    before, small_before = starving_before(config, now, queued, gpus, median)
    top = fm.max_gpus
    waited = [
        (job.submitted_at, job.key[2], job)
        for job in ordered
        if job.submitted_at <= before
        and (job.submitted_at <= small_before or not small_shape(job.nodes, job.gpus, top))
    ]
    heapq.heapify(waited)
    return (heapq.heappop(waited)[2] for _ in range(len(waited)))  # popped only as far as the caller reads


def starving_first(
    queue: Iterable[Candidate], guard: StarvationGuard, held: Collection[str], index: QueueIndex | None = None
) -> tuple[Iterable[Candidate], set[str]]:
    """Move the protected jobs to the front, oldest first, and return the new order with their ids.

    Protected are the jobs of `held` (protected by an earlier pass: never withdrawn) and, up to `protect_oldest`
    in all, the oldest jobs that waited their threshold: `starve_threshold`, or a small job's longer
    `small_threshold`. At one instant every job of a kind has the same threshold, so the starving jobs of each kind
    are its oldest ones. A job that cannot run now (deferred for its price, or larger than the
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
    if index is None:
        oldest: Iterable[Candidate] = _waited_without_index(ordered, guard)
        starving_before = small_before = math.inf  # every job it yields waited its threshold
    else:
        median: float | None = None
        if config.starve_walltime_factor:
            median = median_of_sorted(
                index.walltimes if index.walltimes is not None else sorted(job.walltime for job in index.by_age)
            )
        if not index.by_age or index.by_age[0].submitted_at > guard.now - starving_floor(config, median):
            return []
        oldest = index.by_age
        starving_before, small_before = _starving_since(guard, index, median)
    top = guard.fm.max_gpus
    fresh: list[Candidate] = []
    for job in oldest:
        if len(fresh) >= room or job.submitted_at > starving_before:
            break
        if job.submitted_at > small_before and small_shape(job.nodes, job.gpus, top):
            continue  # a small job past the threshold but not its own yet
        if job.id not in held and guard.can_run_now(job):
            fresh.append(job)
    return fresh


def _starving_since(guard: StarvationGuard, index: QueueIndex, median: float | None) -> tuple[float, float]:
    """Submitted by when a job of the indexed queue starves: any job, and a small one (`small_threshold`).

    Where every queued shape is small, no job starves before the small jobs' time: the walk stops there, rather
    than reading the jobs between the two.
    """
    config, now, gpus = guard.config, guard.now, sum(guard.fm.totals)
    before, small_before = starving_before(config, now, index.gpu_s, gpus, median)
    top = guard.fm.max_gpus
    if small_before < before and all(small_shape(nodes, each, top) for nodes, each in index.shapes):
        before = small_before
    return before, small_before


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
