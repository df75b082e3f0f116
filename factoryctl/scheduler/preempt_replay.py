"""Trace replay with preemption carried out, so the policy option can be judged on a trace before a cluster.

`schedule()` only proposes preemptions (`decide.plan_preemptions`); this replay acts them out on the simulated
clock with the same victim choice (`preempt.make_room`, through `plan_claim`, fed from indexes of its gangs rather
than a scan of all of them at every pass). The rules in full are in docs/scheduler.md; what this module guarantees:

- Only the first job a pass could not start for lack of room (`PassOutcome.first_short`) preempts, only jobs of
  strictly lower priority, never a job started at this instant or already in a grace period (no job is stopped
  twice in one grace period); gangs whose walltime ends within the grace period are waited for, not stopped.
- Victims keep their GPUs for the grace period, then are requeued with their remaining work (the grace period
  counts as run), their submit time and priority. The preempting job *claims* their GPUs and its free ones, so no
  other job can take them, and starts when the grace period ends, or as soon as every victim has ended on its own.
- The look-ahead sees a claim's GPUs busy until its expected end, so other jobs' reservations stay truthful.
- Termination: a job is only stopped for a job of strictly higher priority, a claiming job always starts, and a
  job claims again only after it was itself stopped; by induction from the highest priority down, every finite
  trace has finitely many preemptions.
"""

from __future__ import annotations

import dataclasses
import heapq
from bisect import bisect_left, insort
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from factoryctl.errors import FactoryError
from factoryctl.model.jobs import SchedNode
from factoryctl.scheduler.core import (
    Candidate,
    ClaimFor,
    PassOutcome,
    Reservation,
    Running,
    Started,
)
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.gangs import settle_gang
from factoryctl.scheduler.policy import SchedulerConfig
from factoryctl.scheduler.preempt import ClaimPlan, Holder, make_room, room_reservation, victim_order
from factoryctl.scheduler.simulate import _NEVER, Replay


@dataclass
class _Claim:
    """A preempting job waiting out its victims' grace period, with the GPUs it already holds."""

    job: Candidate
    chosen: tuple[int, ...]
    at: float
    placeholder: Running
    victims: list[int] = field(default_factory=list)
    awaited: list[int] = field(default_factory=list)  # gangs ending within the grace period: waited for, not stopped

    def gangs(self) -> list[int]:
        """Every gang whose GPUs it waits for."""
        return self.victims + self.awaited


@dataclass
class _Gang:
    """A running job as preemption needs it: who, since when, until when, and its record and look-ahead entry."""

    holder: Holder
    end: float
    wall_end: float
    entry: Running
    record: int
    shape: tuple[int, int]
    handover: dict[int, int] = field(default_factory=dict)
    claim: _Claim | None = None


class PreemptingReplay(Replay):
    """`Replay` plus claims: stops lower-priority gangs for the first job that lacks room, as the module says."""

    keeps_started = True  # a stopped job is queued again with the work it has left: its trace job is needed

    def __init__(self, nodes: Sequence[SchedNode], config: SchedulerConfig, clock: Callable[[], float]) -> None:
        """An empty replay; `config.grace_s` is the grace period."""
        super().__init__(nodes, config, clock)
        self.gangs: dict[int, _Gang] = {}
        self.lowest = Counter[int]()  # priorities of the running gangs not yet stopping: a cheap "anyone below?"
        # The same gangs by walltime end and in victim order (`preempt.victim_order`), each with its sequence: what
        # `claim_for` reads, pass after pass while a job waits, without a scan of every running gang.
        self.by_end: list[tuple[float, str, int]] = []
        self.by_value: list[tuple[int, float, str, int]] = []
        self.claims: deque[_Claim] = deque()
        self.cancelled: set[int] = set()
        self.victim_ids: dict[int, str] = {}  # gang sequence -> job id, for the gangs ever stopped or waited for
        self.stopped = 0
        self.grace_gpu_s = 0.0

    def preempted(self) -> tuple[int, float]:
        """Jobs stopped by preemption, and the GPU-seconds of their grace periods."""
        return self.stopped, self.grace_gpu_s

    def pending(self) -> bool:
        """Jobs still wait to start, or a claiming job waits for its grace period to end."""
        return bool(self.queue or self.claims)

    def next_event(self) -> float:
        """The next natural end of a running job or end of a grace period."""
        self._drop_cancelled()
        end = self.ends[0][0] if self.ends else _NEVER
        return min(end, self.claims[0].at) if self.claims else end

    def claiming(self) -> list[tuple[Candidate, tuple[int, ...], float, list[str], list[str]]]:
        """The jobs waiting for their victims: the job, its nodes, when it starts, its victims' ids, the ids waited for.

        Those waited for are not stopped: their walltimes end within the grace period.

        It starts at the end of the grace period, or when its last victim ends on its own if all of them do sooner.
        """
        found = []
        for claim in self.claims:
            living = [self.gangs[seq].end for seq in claim.gangs() if seq in self.gangs]
            start = claim.at if not living or max(living) > claim.at else max(living)
            victims = [self.victim_ids[seq] for seq in claim.victims]
            found.append((claim.job, claim.chosen, start, victims, [self.victim_ids[seq] for seq in claim.awaited]))
        return found

    def stopping(self) -> dict[str, tuple[str, float, float, bool]]:
        """The running jobs a claim waits for: id -> (claiming job, end of the grace period, own end, stopped?).

        `stopped` is False for a job waited for because its walltime ends within the grace period.
        """
        return {
            gang.holder.id: (gang.claim.job.id, gang.claim.at, gang.end, seq not in gang.claim.awaited)
            for seq, gang in self.gangs.items()
            if gang.claim is not None
        }

    def _drop_cancelled(self) -> None:
        while self.ends and self.ends[0][1] in self.cancelled:
            self.cancelled.discard(heapq.heappop(self.ends)[1])

    def finish_until(self, now: float) -> None:
        """Process natural ends and grace-period ends up to `now`, in time order (an end before a stop)."""
        while True:
            self._drop_cancelled()
            end = self.ends[0][0] if self.ends else _NEVER
            due = self.claims[0].at if self.claims else _NEVER
            if min(end, due) > now:
                return
            if end <= due:
                _, seq, _ = heapq.heappop(self.ends)
                gang = self.gangs.pop(seq)
                self._release(gang)
                claim = gang.claim
                if claim is not None and not any(seq in self.gangs for seq in claim.gangs()):
                    self.claims.remove(claim)  # every victim ended on its own: its GPUs are all there
                    self._settle(claim, end)
            else:
                claim = self.claims.popleft()
                self._settle(claim, claim.at)

    def launch(self, started: Started, now: float) -> Running:
        """Run a job and remember it as a possible victim."""
        entry = super().launch(started, now)
        job = started.job
        trace_job = self.by_id[job.id]
        end = now + trace_job.runtime_s  # as `Replay.launch` computes it
        ends_by = entry[0] if trace_job.walltime_s > 0 else float("inf")  # what `schedule()` knows: its walltime
        holder = Holder(job.id, job.priority, now, entry[2], ends_by)
        self.gangs[entry[1]] = _Gang(holder, end, entry[0], entry, len(self.records) - 1, (job.nodes, job.gpus))
        self.lowest[job.priority] += 1
        insort(self.by_end, (ends_by, job.id, entry[1]))
        insort(self.by_value, (*victim_order(holder), entry[1]))
        return entry

    def _release(self, gang: _Gang) -> None:
        """A gang ends or is stopped: its GPUs go back, except those handed over to the job that claimed them."""
        del self.lookahead[bisect_left(self.lookahead, gang.entry)]
        if gang.claim is None:
            self._forget(gang)
        for index, gpus in gang.holder.held:
            kept = gang.handover.get(index, 0)
            if gpus > kept:
                self.fm.give(index, gpus - kept)

    def _forget(self, gang: _Gang) -> None:
        """The gang ends, is stopped or is waited for: no claim may stop or wait for it any more."""
        holder, seq = gang.holder, gang.entry[1]
        self.lowest[holder.priority] -= 1
        if not self.lowest[holder.priority]:
            del self.lowest[holder.priority]
        del self.by_end[bisect_left(self.by_end, (holder.ends_by, holder.id, seq))]
        del self.by_value[bisect_left(self.by_value, (*victim_order(holder), seq))]

    def claim_for(self, now: float) -> ClaimFor:
        """The pass's `claim_for`: `preempt.claim_reservation` over the gangs that may be stopped or waited for.

        Those are the running gangs of strictly lower priority than the job, not started at this very instant and
        not already stopping or waited for by another claim. `_plan` finds them through the replay's indexes.
        """

        def reserve(fm: FreeMap, first: Candidate) -> Reservation | None:
            if not any(priority < first.priority for priority in self.lowest):
                return None
            return room_reservation(fm, first, self._plan(fm, first, now), now, self.config.grace_s)

        return reserve

    def _plan(self, fm: FreeMap, first: Candidate, now: float) -> ClaimPlan:
        """`preempt.plan_claim` over those gangs, from `by_end` and `by_value` instead of a sort of all of them.

        The gangs ending within the grace period come in `ending`'s order (walltime end, then id) and the others
        in victim order, read only as far as room is made: the same plan, without a pass over every running gang
        (a job waiting for gangs ending in the grace period asks at every pass). The replay's jobs have no node
        constraints, so every gang frees GPUs the job may use.
        """
        stop_at, priority, gangs = now + self.config.grace_s, first.priority, self.gangs
        awaited: list[Holder] = []
        for ends_by, _, seq in self.by_end:
            if ends_by > stop_at:
                break
            holder = gangs[seq].holder
            if holder.priority < priority and holder.started_at < now:
                awaited.append(holder)
        waited_for = {holder.id for holder in awaited}

        def candidates() -> Iterator[Holder]:
            for below, _, _, seq in self.by_value:
                if below >= priority:
                    return
                holder = gangs[seq].holder
                if holder.started_at < now and holder.id not in waited_for:
                    yield holder

        return make_room(fm, first, awaited, candidates())

    def after_pass(self, outcome: PassOutcome, now: float) -> None:
        """Stop the gangs the pass's claim chose: its job leaves the queue and claims its GPUs.

        A claim with nobody to stop (it only waits for gangs ending within the grace period) claims nothing: the job
        stays queued and holds its reservation from pass to pass, as under the live `schedule()`.
        """
        claim = outcome.claim
        if claim is not None and claim.victims:
            self._claim(claim, now)

    def _claim(self, claim: Reservation, now: float) -> None:
        """The job leaves the queue and takes its placement's GPUs: the free ones now, the others as they come free.

        GPUs there that a job backfilled in this pass took (it ends by the end of the grace period, or the pass would
        not have let it) come to the claim when that job ends: the claim waits for it as for a job ending in the grace.
        """
        job, chosen = claim.job, tuple(claim.holds)
        self.dequeue(job)
        self.protected.discard(job.id)
        at = now + self.config.grace_s
        self.seq += 1
        placeholder: Running = (at + job.walltime, self.seq, tuple((index, job.gpus) for index in chosen))
        insort(self.lookahead, placeholder)
        taken = _Claim(job, chosen, at, placeholder)
        owed = {index: job.gpus - min(self.fm.free[index], job.gpus) for index in chosen}
        for index in chosen:
            self.fm.take(index, job.gpus - owed[index])
        by_id = {gang.holder.id: seq for seq, gang in self.gangs.items() if gang.claim is None}
        self._attach(taken, claim.awaited, taken.awaited, by_id, owed)  # they end first: handed over before any victim
        self._attach(taken, claim.victims, taken.victims, by_id, owed)
        for gang in list(self.gangs.values()):
            if any(owed.get(index) for index, _ in gang.holder.held) and gang.claim is None and gang.end <= at:
                self._attach(taken, (gang.holder.id,), taken.awaited, by_id, owed)  # a backfilled job on its GPUs
        if any(owed.values()):
            raise FactoryError(f"simulator bug: the victims of {job.id} do not free the GPUs it needs")
        self.claims.append(taken)

    def _attach(
        self, claim: _Claim, holders: Iterable[str], into: list[int], by_id: dict[str, int], owed: dict[int, int]
    ) -> None:
        """Hand the GPUs of the gangs `holders` names to `claim` as they free, recording each gang in `into`."""
        for holder in holders:
            seq = by_id[holder]
            self._doom(self.gangs[seq], claim, owed)
            into.append(seq)
            self.victim_ids[seq] = holder

    def _doom(self, gang: _Gang, claim: _Claim, owed: dict[int, int]) -> None:
        """Mark a gang the claim waits for: hand over what the claim still needs on its nodes.

        Its other GPUs free at its end or stop.
        """
        gang.claim = claim
        self._forget(gang)
        for index, gpus in gang.holder.held:
            given = min(owed.get(index, 0), gpus)
            if given:
                gang.handover[index] = given
                owed[index] -= given
        rest = tuple((i, g - gang.handover.get(i, 0)) for i, g in gang.holder.held if g > gang.handover.get(i, 0))
        del self.lookahead[bisect_left(self.lookahead, gang.entry)]
        gang.entry = (min(gang.entry[0], claim.at), gang.entry[1], rest)
        insort(self.lookahead, gang.entry)

    def _settle(self, claim: _Claim, at: float) -> None:
        """Start the claiming job at `at`: the end of the grace period, or the end of its last victim.

        Victims still running at the end of the grace period are stopped and requeued with their rest.
        """
        if any(seq in self.gangs for seq in claim.awaited):
            raise FactoryError(f"simulator bug: job {claim.job.id} waited for a job that ran past its walltime")
        for seq in claim.victims:
            gang = self.gangs.pop(seq, None)
            if gang is not None:
                self._stop(gang, seq, at)
        del self.lookahead[bisect_left(self.lookahead, claim.placeholder)]
        settle_gang(self.fm, claim.job.num_gpus, claim.job.gpus, claim.chosen)  # it claimed job.gpus on each node
        self.launch(Started(claim.job, claim.chosen, False), at)

    def _stop(self, gang: _Gang, seq: int, at: float) -> None:
        """Stop a victim at the end of its grace period and requeue it with the work it has left."""
        self.cancelled.add(seq)
        self._release(gang)
        self.records.cut(gang.record, at)
        job = self.by_id[gang.holder.id]
        self.stopped += 1
        self.grace_gpu_s += job.num_gpus * self.config.grace_s
        walltime = gang.wall_end - at if job.walltime_s > 0 else 0.0  # 0: no walltime (a hand-built TraceJob)
        rest = dataclasses.replace(job, duration_s=gang.end - at, walltime_s=walltime)
        self.enqueue(rest, *gang.shape)
