"""One scheduling pass over an ordered queue: start what fits, reserve for the head, backfill the rest.

This is the inner loop both the live scheduler (`schedule`) and the trace simulator run, so it works on a mutable
`FreeMap` and light `Candidate` records rather than on the frozen model objects, and keeps per-job work O(1):
a gang shape that failed to fit is remembered for the rest of the pass (capacity only shrinks within a pass).
Given the simulator's `QueueIndex`, a pass never walks the whole queue either: once no job can take a reservation,
it tries only the jobs of shapes that have not failed yet, found through per-shape queues (`shapequeue`).

Reservations are EASY-style generalised to several jobs and to GPU granularity. Reservation r has a start time
s_r and the GPUs it holds per node; it also keeps, per held node, the GPUs a job running past s_r may still take
there (its cap: free at s_r minus everything reserved on the node so far). A job may start now only if it fits
within the caps of every reservation that starts before it would end. Later reservations are computed with the
earlier ones' GPUs treated as held for good, which is conservative but never lets two reservations collide.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from factoryctl.model.jobs import JobState
from factoryctl.scheduler.freemap import FreeMap, Profile, choose_grouped
from factoryctl.scheduler.gangs import gpu_seconds, settle_gang
from factoryctl.scheduler.passdata import Candidate as Candidate
from factoryctl.scheduler.passdata import PassOutcome as PassOutcome
from factoryctl.scheduler.passdata import Reservation as Reservation
from factoryctl.scheduler.passdata import Running as Running
from factoryctl.scheduler.passdata import Started as Started
from factoryctl.scheduler.passdata import Waiting as Waiting
from factoryctl.scheduler.passdata import is_deferred as is_deferred
from factoryctl.scheduler.passdata import queue_key as queue_key
from factoryctl.scheduler.policy import SchedulerConfig
from factoryctl.scheduler.shapequeue import ShapeQueue


class _Pass:
    """The state of one pass; `run` walks the queue once.

    Node indices are positions in `fm`; a "shape" is (nodes, GPUs per node); "bucket k" means "the first k
    reservations (by start) begin before the job would end", so their caps bind it (`capsets[k]`).
    """

    def __init__(
        self, fm: FreeMap, running: Sequence[Running], now: float, config: SchedulerConfig, explain: bool
    ) -> None:
        self.fm = fm
        self.running = running
        self.now = now
        self.config = config
        self.explain = explain
        self.out = PassOutcome()  # what the pass decided so far: starts, reservations, waiting (when explaining)
        self.new_running: list[Running] = []  # gangs started by this pass, (end, seq, GPUs held), for `reserve`
        self.starts: list[float] = []  # reservation starts, sorted
        # capsets[k]: per node index, the GPUs a job may take there if the first k reservations bind it (the
        # tightest of their caps); capsets[0] is None, no cap. Rebuilt whenever a reservation or its caps change.
        self.capsets: list[dict[int, int] | None] = [None]
        # Start attempts that did not fit, as (nodes, GPUs per node, allowed nodes, bucket k): the same attempt is
        # not tried again (capacity only shrinks within a pass). Cleared by `reserve`, which renumbers the buckets.
        self.failed: set[tuple[int, int, frozenset[int] | None, int]] = set()
        self.holds: dict[int, int] = {}  # node index -> GPUs the pass's reservations hold there (their future use)
        self.jumped = False  # a job could not start, so every later start overtakes it (`Started.backfilled`)
        # Shapes `_nothing_can_start` found hopeless for the rest of the pass (no room at all); never cleared.
        self.dead: set[tuple[int, int]] = set()
        # shape -> the smallest bucket k in which a job of that shape (without node constraints) failed to start;
        # cleared with `failed`. Read only by `_nothing_can_start`.
        self.failed_at: dict[tuple[int, int], int] = {}
        self.held: Collection[str] = ()  # ids an earlier pass protected from starvation (`plan`'s `protected`)
        self.index: QueueIndex | None = None

    def try_start(
        self, job: Candidate, end: float, k: int, memo: tuple[int, int, frozenset[int] | None, int]
    ) -> Started | None:
        """Start `job` now if it fits within the caps of the `k` reservations that begin before it would end."""
        caps = self.capsets[k]
        fm = self.fm
        chosen = (
            fm.place(job.nodes, job.gpus, caps, job.allowed)
            if fm.fits(job.nodes, job.gpus, caps, job.allowed)
            else None
        )
        if chosen is None:
            self.failed.add(memo)
            if job.allowed is None:
                shape = (job.nodes, job.gpus)
                self.failed_at[shape] = min(k, self.failed_at.get(shape, k))
            return None
        fm.commit(chosen, job.gpus)
        held = settle_gang(fm, job.num_gpus, job.gpus, chosen)
        if k:
            self._charge_caps(held, end)
        self.new_running.append((end, len(self.new_running), held))
        return Started(job, tuple(chosen), backfilled=self.jumped)

    def _charge_caps(self, held: Iterable[tuple[int, int]], end: float) -> None:
        for reservation in self.out.reservations:
            if reservation.start < end:
                for index, gpus in held:
                    if index in reservation.caps:
                        reservation.caps[index] -= gpus
        self._rebuild_capsets()

    def _rebuild_capsets(self) -> None:
        ordered = sorted(self.out.reservations, key=lambda r: r.start)
        self.starts = [r.start for r in ordered]
        capsets: list[dict[int, int] | None] = [None]
        merged: dict[int, int] = {}
        for reservation in ordered:
            merged = dict(merged)
            for index, cap in reservation.caps.items():
                merged[index] = min(cap, merged.get(index, cap))
            capsets.append(merged)
        self.capsets = capsets

    def reserve(self, job: Candidate) -> Reservation | None:
        profile = Profile(self.fm, self.holds)
        start = self.now
        ends = heapq.merge(self.running, sorted(self.new_running))
        upcoming = next(ends, None)
        while not profile.fits(job.nodes, job.gpus, job.allowed):
            if upcoming is None:
                return None
            start = max(self.now, upcoming[0])
            while upcoming is not None and upcoming[0] <= start:
                for index, gpus in upcoming[2]:
                    profile.release(index, gpus)
                upcoming = next(ends, None)
        chosen = choose_grouped(profile.candidates(job.gpus, job.allowed), job.nodes, self.fm.groups, profile.free)
        holds = {index: job.gpus for index in chosen}
        caps = {index: profile.free[index] - job.gpus for index in chosen}
        for index, gpus in holds.items():
            self.holds[index] = self.holds.get(index, 0) + gpus
        reservation = Reservation(job, start, holds, caps)
        self.out.reservations.append(reservation)
        self._rebuild_capsets()
        self.failed.clear()
        self.failed_at.clear()
        return reservation

    def run(self, queue: Iterable[Candidate], price: float | None) -> PassOutcome:
        """Walk `queue` once, protected (starving) jobs first, and return what the pass decided.

        Each job in turn is: deferred for its price; never placeable on these nodes; blocked (an earlier,
        unprotected job was held back under a policy without backfill); started, if it fits now within the caps of
        the reservations that begin before it would end; or held back (`_hold_back`: it may take a reservation,
        and may become the blocker). The first job that does not start is `first_short`; later starts are backfills.

        Invariants: `fm` only loses GPUs during the pass, so a start attempt or shape that failed stays failed
        until `reserve` renumbers the buckets; no start breaks the caps of a reservation that begins before the
        started job would end; there are at most `config.reservations` reservations. Without `explain` the loop
        takes shortcuts: it stops at the blocker, when no GPU is free or when no queued shape can start any more
        (no later job could start); it skips `_hold_back` where that could not reserve (it would only describe the
        job); past the protected jobs it hands the rest to `_backfill`, which tries exactly the jobs this loop
        would. So `explain` changes which jobs are described (and may add reservations that no later start could
        meet) but never which jobs start, where, or `first_short`.
        """
        blocker: str | None = None  # id of the held-back job that blocks the rest (policies without backfill)
        config, now, explain = self.config, self.now, self.explain  # locals: this loop is the scheduler's hot path
        queue, protected = self._protect(queue, price)
        fm = self.fm
        zero, node_count, can_host, hosts = fm.buckets[0], len(fm.free), fm.can_host, fm.hosts
        failed, reservations, most = self.failed, self.out.reservations, config.reservations
        quiet, starving_only = not explain and config.backfill, config.reserve_starving_only
        short: Candidate | None = None  # the first job that could not start (`PassOutcome.first_short`)
        # Past the protected jobs, once no job could take a reservation, only starts matter: `_backfill` finds the
        # jobs worth trying through the index instead of walking the rest of the queue (`shapequeue`).
        indexed = quiet and price is None and self.index is not None and self.index.by_shape is not None
        after: tuple[float, float, int] | None = None  # key of the last job walked past the protected ones
        for seen, job in enumerate(queue):
            if seen >= len(protected):  # past the protected jobs: the rest of the queue, in key order
                if indexed and (starving_only or len(reservations) >= most):
                    short = self._backfill(after, protected, short)
                    break
                after = job.key
            if job.deferrable and is_deferred(job, now, price):
                self._wait(job, JobState.DEFERRED, "deferred")
                continue
            gpus = job.gpus
            if not (  # inline `FreeMap.hostable`: this loop runs for every queued job of every pass
                gpus < len(hosts) and job.nodes <= hosts[gpus]
                if job.allowed is None
                else can_host(job.nodes, gpus, job.allowed)
            ):
                self._wait(job, JobState.PENDING, "never")
                continue
            if blocker is not None:
                if not explain:
                    break
                self._wait(job, JobState.PENDING, "blocked", blocker=blocker)
                continue
            started = None
            tried = False
            if len(zero) != node_count:
                end = now + job.walltime
                starts = self.starts
                k = bisect_left(starts, end) if starts else 0
                memo = (job.nodes, gpus, job.allowed, k)
                if memo not in failed:
                    tried = True
                    started = self.try_start(job, end, k, memo)
            if started is not None:
                self.out.started.append(started)
                continue
            if short is None:  # the first job that cannot start: later starts jump the queue
                short = job
                self.jumped = True
            if not explain and (len(zero) == node_count or (tried and self._nothing_can_start())):
                break
            if quiet and (len(reservations) >= most or (starving_only and job.id not in protected)):
                continue  # `_hold_back` would neither reserve nor block: most of a deep queue ends here
            if self._hold_back(job, protected):
                blocker = job.id
        self.out.first_short = short
        return self.out

    def _backfill(
        self, after: tuple[float, float, int] | None, protected: Collection[str], short: Candidate | None
    ) -> Candidate | None:
        """Try, in queue order, the jobs after key `after` whose (shape, bucket) has not failed in this pass.

        These are exactly the jobs `run` would try: it skips the others (`failed`), and nothing else it does for
        them matters here (no reservation is left to take, none is protected). A (shape, bucket) that fails stays
        failed, as in `run`. Returns the first job that did not start (`PassOutcome.first_short`).
        """
        index = self.index
        assert index is not None
        assert index.by_shape is not None
        by_shape, shortest = index.by_shape, index.shapes
        now, starts, failed, fm = self.now, self.starts, self.failed, self.fm
        zero, node_count = fm.buckets[0], len(fm.free)
        heads: list[tuple[tuple[float, float, int], int, int, int, Candidate]] = []
        for (nodes, gpus), queued in by_shape.items():
            least = shortest.get((nodes, gpus))
            if least is None:
                continue  # none queued
            for k in range(bisect_left(starts, now + least), len(starts) + 1):  # no job in a lower bucket
                head = None if (nodes, gpus, None, k) in failed else queued.first_after(after, k, now, starts)
                if head is not None:
                    heads.append((head.key, nodes, gpus, k, head))
        heapq.heapify(heads)
        while heads:
            key, nodes, gpus, k, job = heads[0]
            if job.id not in protected:
                if len(zero) == node_count:
                    return job if short is None else short
                started = self.try_start(job, now + job.walltime, k, (nodes, gpus, None, k))
                if started is None:
                    if short is None:
                        short, self.jumped = job, True
                    heapq.heappop(heads)
                    continue
                self.out.started.append(started)
            head = by_shape[(nodes, gpus)].first_after(key, k, now, starts)
            if head is None:
                heapq.heappop(heads)
            else:
                heapq.heapreplace(heads, (head.key, nodes, gpus, k, head))
        return short

    def _protect(self, queue: Iterable[Candidate], price: float | None) -> tuple[Iterable[Candidate], set[str]]:
        """The queue with the starving jobs first (when the policy guards against starvation), and their ids."""
        protected: set[str] = set()
        if self.config.starve_after_s is not None:
            guard = _Guard(self.now, self.config, self.fm, price)
            queue, protected = _starving_first(queue, guard, self.held, self.index)
        self.out.protected = protected
        return queue, protected

    def _hold_back(self, job: Candidate, protected: Collection[str]) -> bool:
        """A job that cannot start now: reserve for it if the policy says so; True if it blocks the rest (no backfill)."""
        config = self.config
        reservation = None
        if len(self.out.reservations) < config.reservations and (
            not config.reserve_starving_only or job.id in protected
        ):
            reservation = self.reserve(job)
        if self.explain:
            self._wait(job, JobState.PENDING, "reserved" if reservation else "resources", reservation=reservation)
        return not config.backfill and job.id not in protected

    def _nothing_can_start(self) -> bool:
        """With a shape hint, whether no queued job could start any more in this pass (then the pass can stop).

        A shape is exhausted when it does not fit at all, or when it failed within the caps of the first k
        reservations and even its shortest queued job would outlast the k-th reservation's start (so it faces
        those caps or stricter ones). Capacity only shrinks within a pass, so an exhausted shape stays exhausted.
        """
        if self.index is None:
            return False
        shapes = self.index.shapes
        fm, dead, failed_at, starts, now = self.fm, self.dead, self.failed_at, self.starts, self.now
        for shape, shortest in shapes.items():
            if shape in dead:
                continue
            k = failed_at.get(shape)
            if k is None:
                if fm.fits(*shape):
                    return False  # not tried yet and there is room: it might start
                dead.add(shape)
            elif k == 0:
                dead.add(shape)  # failed with no reservation in the way: no room at all
            elif now + shortest <= starts[k - 1]:
                return False  # a short job of this shape could end before the k-th reservation
        return True

    def _wait(
        self,
        job: Candidate,
        state: JobState,
        why: str,
        reservation: Reservation | None = None,
        blocker: str | None = None,
    ) -> None:
        if self.explain:
            self.out.waiting.append(Waiting(job, state, why, reservation, blocker))


def age_order(job: Candidate) -> tuple[float, int]:
    """Oldest first: submission time, then the queue's sequence number (the starvation guard's order)."""
    return (job.submitted_at, job.key[2])


def starve_threshold(config: SchedulerConfig, queued_gpu_s: float, total_gpus: int) -> float:
    """How long a job may wait before it is starving: the larger of the fixed floor and the queue's drain time.

    The drain time is the queued GPU-seconds (walltimes) over the cluster's GPUs: how long the cluster would take
    to run the whole queue back to back. Scaled by `starve_drain_factor`, it lets the threshold follow the load: a
    light queue protects a job after the floor, a deep backlog lets short jobs overtake for longer before the old
    ones are served in submission order. New arrivals raise it, which is why protection is sticky (`plan`'s
    `protected`): a job that was starving stays protected until it starts, whatever arrives after.
    """
    floor = config.starve_after_s or 0.0
    if not config.starve_drain_factor or total_gpus <= 0:
        return floor
    return max(floor, config.starve_drain_factor * queued_gpu_s / total_gpus)


class _Guard(NamedTuple):
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
    """GPU-seconds (walltimes) of the queued jobs the schedulable nodes could ever hold, as `gpu_seconds` sums them.

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


class QueueIndex(NamedTuple):
    """What a caller that keeps its queue from pass to pass can hand a pass, so the pass need not walk it all.

    Without it the starvation guard walks the whole queue each pass to find the oldest jobs and the queued
    GPU-seconds; the simulator keeps these up to date as jobs arrive and start instead. The live scheduler builds
    its queue afresh each pass and gives none. The index must describe exactly the queue given to `plan`, and
    every queued job must be hostable on the pass's nodes and carry no node constraint.

    Attributes:
        shapes: for each queued (nodes, GPUs per node), the shortest walltime queued with it. The pass then stops
            as soon as no queued job could start, instead of walking the rest of the queue.
        by_age: the queued jobs oldest first (`age_order`).
        by_id: the queued jobs by id.
        gpu_s: the queue's GPU-seconds, summed exactly as `gpu_seconds` does: its drain time's numerator.
        by_shape: optionally, the queued jobs of each shape in key order (`ShapeQueue`). Given only when the
            queue handed to `plan` is sorted by key and its keys are unique (the simulator's): once no job can
            take a reservation any more, the pass then tries just the jobs that might start instead of walking
            the rest of the queue.
    """

    shapes: Mapping[tuple[int, int], float]
    by_age: Sequence[Candidate]
    by_id: Mapping[str, Candidate]
    gpu_s: float
    by_shape: Mapping[tuple[int, int], ShapeQueue] | None = None


def _starving_first(
    queue: Iterable[Candidate], guard: _Guard, held: Collection[str], index: QueueIndex | None = None
) -> tuple[Iterable[Candidate], set[str]]:
    """Move the protected jobs to the front, oldest first, and return the new order with their ids.

    Protected are the jobs of `held` (protected by an earlier pass: never withdrawn) and, up to `protect_oldest`
    in all, the oldest jobs that waited `starve_threshold`. At one instant every job has the same threshold, so
    the starving jobs are the oldest ones. A job that cannot run now (deferred for its price, or larger than the
    schedulable nodes) neither takes a protection slot nor counts in the drain time: it would block the guard.
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
    ordered: list[Candidate], guard: _Guard, held: Collection[str], room: int, index: QueueIndex | None
) -> list[Candidate]:
    """Up to `room` of the oldest jobs that waited the starving threshold and could run now (held ones aside)."""
    floor = guard.now - (guard.config.starve_after_s or 0.0)
    oldest: Iterator[Candidate]
    if index is None:
        waited = [(job.submitted_at, job.key[2], job) for job in ordered if job.submitted_at <= floor]
        if not waited:  # nobody waited the floor: not worth the drain-time sum
            return []
        heapq.heapify(waited)
        oldest = (heapq.heappop(waited)[2] for _ in range(len(waited)))
        queued = _hostable_work(ordered, guard.fm)
    else:
        if not index.by_age or index.by_age[0].submitted_at > floor:
            return []
        oldest, queued = iter(index.by_age), index.gpu_s
    starving_before = guard.now - starve_threshold(guard.config, queued, sum(guard.fm.totals))
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


def plan(
    fm: FreeMap,
    queue: Iterable[Candidate],
    running: Sequence[Running],
    now: float,
    config: SchedulerConfig,
    price: float | None = None,
    explain: bool = False,
    protected: Collection[str] = (),
    index: QueueIndex | None = None,
) -> PassOutcome:
    """Run one pass: start jobs on `fm` (which it updates) and say why the others wait.

    Args:
        fm: free GPUs of the schedulable nodes; the started jobs' GPUs are taken from it.
        queue: waiting jobs in policy order (`SchedulerConfig.order_key`).
        running: running gangs sorted by expected end.
        now: the time of the pass (seconds).
        config: the policy.
        price: the current grid price per MWh, for deferrable jobs (None: unknown, nothing is deferred).
        explain: also describe every waiting job (the simulator skips this for speed).
        protected: ids of jobs an earlier pass protected (`PassOutcome.protected`): they stay first, so a
            reservation is never withdrawn because newer jobs raised the starving threshold.
        index: optional facts about the queue from a caller that keeps it between passes (`QueueIndex`).
    """
    work = _Pass(fm, running, now, config, explain)
    work.held = protected
    work.index = index
    return work.run(queue, price)
