"""One scheduling pass over an ordered queue: start what fits, reserve for the head, backfill the rest.

This is the inner loop both the live scheduler (`schedule`) and the trace simulator run, so it works on a mutable
`FreeMap` and light `Candidate` records rather than on the frozen model objects, and keeps per-job work O(1):
a gang shape that failed to fit is remembered for the rest of the pass (capacity only shrinks within a pass).
Given the simulator's `QueueIndex`, a pass never walks the whole queue either: once no job can take a reservation,
it tries only the jobs of shapes that have not failed yet, found through per-shape queues (`shapequeue`).
Which jobs come first because they starve is the guard's business (`starvation`); the pass just walks its order.

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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from factoryctl.model.jobs import JobState
from factoryctl.scheduler.freemap import FreeMap, Profile, choose_grouped
from factoryctl.scheduler.gangs import gpu_seconds as gpu_seconds
from factoryctl.scheduler.gangs import settle_gang
from factoryctl.scheduler.passdata import Candidate as Candidate
from factoryctl.scheduler.passdata import PassOutcome as PassOutcome
from factoryctl.scheduler.passdata import Reservation as Reservation
from factoryctl.scheduler.passdata import Running as Running
from factoryctl.scheduler.passdata import Started as Started
from factoryctl.scheduler.passdata import Waiting as Waiting
from factoryctl.scheduler.passdata import is_deferred as is_deferred
from factoryctl.scheduler.passdata import queue_key as queue_key
from factoryctl.scheduler.policy import SchedulerConfig
from factoryctl.scheduler.queueindex import QueueIndex as QueueIndex
from factoryctl.scheduler.starvation import StarvationGuard, starving_first
from factoryctl.scheduler.starvation import age_order as age_order
from factoryctl.scheduler.starvation import starve_threshold as starve_threshold

#: The reservation a job short of room holds while preemption makes room for it (`preempt.claim_reservation`).
ClaimFor = Callable[[FreeMap, Candidate], Reservation | None]


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
        # With preemption: the reservation `first_short` holds while it makes room (`preempt.claim_reservation`).
        self.claim_for: ClaimFor | None = None
        self.claimer: str | None = None  # the job the previous pass's claim was for: it goes first (`plan`)

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
        return self._hold(Reservation(job, start, holds, caps))

    def _hold(self, reservation: Reservation) -> Reservation:
        """Make `reservation` binding: later starts keep to its caps, later reservations treat its GPUs as held."""
        for index, gpus in reservation.holds.items():
            self.holds[index] = self.holds.get(index, 0) + gpus
        self.out.reservations.append(reservation)
        self._rebuild_capsets()
        self.failed.clear()
        self.failed_at.clear()
        return reservation

    def _claim(self, job: Candidate) -> bool:
        """With preemption, reserve for `first_short` what making room gets it (`claim_for`); True if it did.

        It is the first job that found no room, so no reservation exists yet: this one comes first.
        """
        assert self.claim_for is not None
        reservation = self.claim_for(self.fm, job)
        if reservation is None:
            return False
        self.out.claim = self._hold(reservation)
        self._wait(job, JobState.PENDING, "reserved", reservation=reservation)
        return True

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
        queue, protected = self._protect(queue, price)
        queue, ahead = self._claimer_first(queue, protected)
        jobs = iter(queue)
        short, blocker = self._walk(jobs, protected, price, ahead)
        if blocker is not None and self.explain:
            for job in jobs:  # the rest of the queue waits behind the blocker (the loop stopped at it)
                self._describe_waiting(job, price, blocker)
        self.out.first_short = short
        return self.out

    def _walk(
        self, jobs: Iterator[Candidate], protected: Collection[str], price: float | None, ahead: Collection[str]
    ) -> tuple[Candidate | None, str | None]:
        """`run`'s loop, to the blocker (the rest left in `jobs`); returns `first_short` and the blocker's id.

        `ahead`: the claimer, then the protected jobs (moved to the front). Hot: locals only, rare outcomes call out.
        """
        now, explain, fm, config = self.now, self.explain, self.fm, self.config
        zero, node_count, can_host, hosts = fm.buckets[0], len(fm.free), fm.can_host, fm.hosts
        failed, reservations, most = self.failed, self.out.reservations, config.reservations
        quiet, starving_only = not explain and config.backfill, config.reserve_starving_only
        short: Candidate | None = None  # the first job that could not start (`PassOutcome.first_short`)
        indexed = quiet and price is None and self.index is not None and self.index.by_shape is not None
        claiming = self.claim_for is not None  # then `first_short` must be found here, where it may reserve
        after: tuple[float, float, int] | None = None  # key of the last job walked past the protected ones
        for seen, job in enumerate(jobs):
            if seen >= len(ahead):  # past the claimer and the protected jobs: the rest of the queue, in key order
                if indexed and (starving_only or len(reservations) >= most) and (short is not None or not claiming):
                    return self._backfill(after, ahead, short), None  # no job can reserve: tries via `shapequeue`
                after = job.key
            gpus = job.gpus
            if (job.deferrable and is_deferred(job, now, price)) or not (  # inline `FreeMap.hostable`
                gpus < len(hosts) and job.nodes <= hosts[gpus]
                if job.allowed is None
                else can_host(job.nodes, gpus, job.allowed)
            ):
                self._describe_waiting(job, price)
                continue
            tried = False
            if len(zero) != node_count:
                end = now + job.walltime
                k = bisect_left(starts, end) if (starts := self.starts) else 0
                memo = (job.nodes, gpus, job.allowed, k)
                if memo not in failed:
                    started = self.try_start(job, end, k, memo)
                    if started is not None:
                        self.out.started.append(started)
                        continue
                    tried = True
            claimed = short is None and claiming and self._claim(job)  # the first job that cannot start may claim
            if short is None:  # and later starts jump the queue
                short, self.jumped = job, True
            if not explain and (len(zero) == node_count or (tried and self._nothing_can_start())):
                break
            if quiet and (claimed or len(reservations) >= most or (starving_only and job.id not in protected)):
                continue  # `_hold_back` would neither reserve nor block: most of a deep queue ends here
            if self._hold_back(job, protected, claimed):
                return short, job.id
        return short, None

    def _backfill(
        self, after: tuple[float, float, int] | None, ahead: Collection[str], short: Candidate | None
    ) -> Candidate | None:
        """Try, in queue order, the jobs after key `after` whose (shape, bucket) has not failed in this pass.

        These are exactly the jobs `run` would try: it skips the others (`failed`) and those walked already at the
        front (`ahead`), and nothing else it does for them matters here (no reservation is left to take, none is
        protected). A (shape, bucket) that fails stays failed, as in `run`. Returns the first job that did not
        start (`PassOutcome.first_short`).
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
            if job.id not in ahead:
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

    def _claimer_first(
        self, queue: Iterable[Candidate], protected: set[str]
    ) -> tuple[Iterable[Candidate], Collection[str]]:
        """The queue with the previous pass's claimer (`plan`'s `claimer`) first, and the ids moved to the front.

        It keeps its reservation from pass to pass, as a protected job does, until it starts: were it not first, a
        job protected meanwhile would be `first_short` instead and backfill could take the GPUs it waits for. So it
        goes first also when it is protected itself: the protected jobs go oldest first, and an older job protected
        after it claimed would come before it. That takes no reservation from another job: it claimed as `first_short`,
        before any reservation of that pass (the jobs ahead of it then started, or could not run at all), and has been
        first since, so every other reservation was made after its own.
        """
        claimer = self.claimer
        if claimer is None:
            return queue, protected
        if self.index is not None:
            job = self.index.by_id.get(claimer)
        else:
            queue = list(queue)
            job = next((job for job in queue if job.id == claimer), None)
        if job is None:  # it started, or left the queue
            return queue, protected
        return itertools.chain((job,), (other for other in queue if other is not job)), {claimer, *protected}

    def _protect(self, queue: Iterable[Candidate], price: float | None) -> tuple[Iterable[Candidate], set[str]]:
        """The queue with the starving jobs first (when the policy guards against starvation), and their ids."""
        protected: set[str] = set()
        if self.config.starve_after_s is not None:
            guard = StarvationGuard(self.now, self.config, self.fm, price)
            queue, protected = starving_first(queue, guard, self.held, self.index)
        self.out.protected = protected
        return queue, protected

    def _hold_back(self, job: Candidate, protected: Collection[str], claimed: bool = False) -> bool:
        """A job that cannot start now: reserve for it if the policy says so; True if it blocks the rest (no backfill).

        `claimed`: it holds its reservation already (`_claim`), and was described then.
        """
        config = self.config
        if claimed:
            return not config.backfill and job.id not in protected
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

    def _describe_waiting(self, job: Candidate, price: float | None, blocker: str | None = None) -> None:
        """Say why `job` waits whatever the capacity: deferred for its price, never placeable here, or blocked."""
        if not self.explain:
            return
        if job.deferrable and is_deferred(job, self.now, price):
            self._wait(job, JobState.DEFERRED, "deferred")
        elif not self.fm.hostable(job.nodes, job.gpus, job.allowed):
            self._wait(job, JobState.PENDING, "never")
        else:
            self._wait(job, JobState.PENDING, "blocked", blocker=blocker)

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
    claim_for: ClaimFor | None = None,
    claimer: str | None = None,
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
        claim_for: with preemption, the reservation the first job short of room holds while it makes room (given
            the free map then and the job; None: it cannot make room); it comes before every other reservation
            and is `PassOutcome.claim`. Without it (preemption off) that job is held back as any other.
        claimer: the id of the job the previous pass's claim was for (`PassOutcome.claim`): if still queued, it is
            considered first (before the protected jobs), so it keeps its reservation until it starts.
    """
    work = _Pass(fm, running, now, config, explain)
    work.held = protected
    work.index = index
    work.claim_for = claim_for
    work.claimer = claimer
    return work.run(queue, price)
