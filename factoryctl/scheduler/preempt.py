"""Which running jobs to stop for a higher-priority one: the victim choice, written once.

The live scheduler (`decide.schedule`, which proposes preemptions to the executor) and the trace simulator
(`preempt_replay`, which carries them out on a simulated clock) must stop the same jobs for the same situation, or
the simulator would evaluate a policy nobody runs. Both describe the running gangs as `Holder` records over the
pass's `FreeMap` and reserve in the pass with `room_reservation` of the same choice, `make_room` (`plan_claim`
feeds it from a list of holders, as `schedule()` does through `claim_reservation`; the replay from indexes it
keeps of its gangs, since a job waiting for ending gangs asks at every pass; `choose_victims` is the victims alone).
The live pass also hands it gangs that are not `stoppable`: jobs being stopped already (`Job.stopping`).

A gang whose walltime ends within the grace period is never a victim: it frees its GPUs by the time a victim would
(the executor stops it at its walltime), so stopping it would throw its last minutes of work away for nothing. Its
GPUs still count: the waiting job waits for them, so they spare stopping some other gang.

The job making room holds a reservation meanwhile (`claim_reservation`, given to `core.plan` as its `claim_for`):
its placement on the free GPUs plus those of the gangs it stops or waits for, from when they are all free (the end
of the grace period, or the last awaited end). Backfill treats it as any reservation: a job may use those GPUs
only if it ends by then, so the GPUs freed for the job stay its own and it never has to preempt again for them
(benchmarks/README.md, Preemption).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.passdata import Candidate, Reservation


class Holder(NamedTuple):
    """A running gang preemption could stop: its id, priority, start time and GPUs per schedulable node index.

    `ends_by` is when it ends at the latest (start + walltime: the executor stops it there), infinity when unknown.
    A gang that is not `stoppable` is only ever waited for, whatever its priority and however late it ends: the live
    `schedule()` gives so the jobs already being stopped for the job making room or for one that left the queue
    (`ends_by` is their stop), and, while its claim is under way, jobs that end within the grace period or by those
    stops (`decide.preemption_claims`).
    """

    id: str
    priority: int
    started_at: float
    held: tuple[tuple[int, int], ...]
    ends_by: float = math.inf
    stoppable: bool = True


def _freed(holder: Holder, allowed: frozenset[int] | None) -> list[tuple[int, int]]:
    """The GPUs stopping `holder` would free on the nodes the waiting job may use."""
    return [(index, gpus) for index, gpus in holder.held if allowed is None or index in allowed]


class ClaimPlan(NamedTuple):
    """What making room for a job takes: the gangs to stop, and the gangs it waits for (they end in the grace)."""

    victims: list[Holder]
    awaited: list[Holder]


def choose_victims(
    fm: FreeMap, job: Candidate, holders: Iterable[Holder], stop_at: float | None = None
) -> list[Holder]:
    """A minimal set of strictly lower-priority gangs whose GPUs, added to `fm`'s free ones, let `job` fit.

    Candidates are the holders of GPUs `job` may use, lowest priority and youngest first (they lose the least
    work). Holders that end by `stop_at` (the end of the grace period; None: none is known to) are never chosen, but
    their GPUs are counted as freed (see the module docstring). After enough are found, any that turn out not to be
    needed are put back, the most valuable first, so every job stopped is necessary. Empty when stopping every
    candidate would still not make room, when `job` fits already, or when the ending holders make room on their own
    (it waits for them). `fm` is not changed.
    """
    return plan_claim(fm, job, holders, stop_at).victims


def plan_claim(fm: FreeMap, job: Candidate, holders: Iterable[Holder], stop_at: float | None = None) -> ClaimPlan:
    """`choose_victims`'s victims, and the fewest ending holders (latest ends put back first) `job` waits for."""
    allowed = job.allowed
    if fm.fits(job.nodes, job.gpus, None, allowed):
        return ClaimPlan([], [])
    holders = [
        h
        for h in holders
        if (h.priority < job.priority or not h.stoppable) and (h.held if allowed is None else _freed(h, allowed))
    ]
    awaited = ending(holders, stop_at)
    waited_for = {h.id for h in awaited}
    return make_room(fm, job, awaited, in_victim_order(h for h in holders if h.stoppable and h.id not in waited_for))


def in_victim_order(holders: Iterable[Holder]) -> Iterator[Holder]:
    """`holders` lowest priority, then youngest, first (they lose the least work); sorted only once read."""
    yield from sorted(holders, key=victim_order)


def victim_order(holder: Holder) -> tuple[int, float, str]:
    """The key `in_victim_order` sorts by: priority, then the latest start first, then the id."""
    return (holder.priority, -holder.started_at, holder.id)


def make_room(fm: FreeMap, job: Candidate, awaited: list[Holder], candidates: Iterable[Holder]) -> ClaimPlan:
    """`plan_claim`'s choice, given the holders `job` may wait for (`ending`) and the others in victim order.

    `candidates` is read only as far as the stopped ones make room (often not at all: the ending holders make
    room), so a caller may produce it lazily (`in_victim_order`, or the replay's index of its gangs). `awaited`
    is trimmed to the holders needed. Empty when `job` fits already or when stopping every candidate would not
    make room.
    """
    allowed = job.allowed
    nothing = ClaimPlan([], [])
    if fm.fits(job.nodes, job.gpus, None, allowed):
        return nothing
    scratch = fm.copy()
    for holder in awaited:
        _give(scratch, holder, allowed)
    victims: list[Holder] = []
    if not scratch.fits(job.nodes, job.gpus, None, allowed):
        for victim in candidates:
            victims.append(victim)
            _give(scratch, victim, allowed)
            if scratch.fits(job.nodes, job.gpus, None, allowed):
                break
        else:
            return nothing
    _keep_needed(scratch, job, victims)  # the most valuable first: keep it running if the others suffice
    _keep_needed(scratch, job, awaited)  # the latest to end first: the job starts no later than the rest allow
    return ClaimPlan(victims, awaited)


def ending(holders: Iterable[Holder], stop_at: float | None) -> list[Holder]:
    """The holders that end by `stop_at` (the executor stops each at its walltime), soonest first.

    Those not `stoppable` too, whenever they end: they are only ever waited for.
    """
    if stop_at is None:
        return []
    return sorted((h for h in holders if h.ends_by <= stop_at or not h.stoppable), key=lambda h: (h.ends_by, h.id))


def _give(scratch: FreeMap, holder: Holder, allowed: frozenset[int] | None) -> None:
    for index, gpus in _freed(holder, allowed):
        scratch.give(index, gpus)


def _keep_needed(scratch: FreeMap, job: Candidate, holders: list[Holder]) -> None:
    """Drop from `holders` (and their GPUs from `scratch`), last first, each one `job` fits without."""
    allowed = job.allowed
    for holder in reversed(list(holders)):
        for index, gpus in _freed(holder, allowed):
            scratch.take(index, gpus)
        if scratch.fits(job.nodes, job.gpus, None, allowed):
            holders.remove(holder)
        else:
            _give(scratch, holder, allowed)


def place_after(fm: FreeMap, job: Candidate, victims: Iterable[Holder]) -> list[int] | None:
    """Where `job` will run once `victims` are stopped: the usual placement on the free GPUs plus theirs."""
    scratch = fm.copy()
    for victim in victims:
        for index, gpus in victim.held:
            scratch.give(index, gpus)
    return scratch.place(job.nodes, job.gpus, None, job.allowed)


def claim_reservation(
    fm: FreeMap, job: Candidate, holders: Iterable[Holder], now: float, grace_s: float
) -> Reservation | None:
    """The reservation `job` holds while it makes room (`plan_claim`), or None when it cannot make room.

    It is `room_reservation` of `plan_claim`'s plan, with the grace period ending at `now + grace_s`.
    """
    return room_reservation(fm, job, plan_claim(fm, job, holders, now + grace_s), now, grace_s)


def room_reservation(fm: FreeMap, job: Candidate, plan: ClaimPlan, now: float, grace_s: float) -> Reservation | None:
    """The reservation `job` holds while `plan` makes room for it; None when it makes none (stops and awaits nobody).

    It starts when every gang it stops or waits for has freed its GPUs: at the end of the grace period when it
    stops some (or at a later stop already under way), else when the last one it waits for ends. It holds
    `place_after`'s placement; its caps leave a backfilled job running past that start only what the job will not
    need there (counting the free GPUs and those the stopped and awaited gangs free, nothing else: never more than
    will be there).
    """
    if not plan.victims and not plan.awaited:
        return None
    chosen = place_after(fm, job, plan.awaited + plan.victims)
    if chosen is None:
        return None  # cannot happen: plan_claim found room on these GPUs
    start = max([h.ends_by for h in plan.awaited] + ([now + grace_s] if plan.victims else []))
    freed: dict[int, int] = {}
    for holder in plan.awaited + plan.victims:
        for index, gpus in holder.held:
            freed[index] = freed.get(index, 0) + gpus
    holds = {index: job.gpus for index in chosen}
    caps = {index: fm.free[index] + freed.get(index, 0) - job.gpus for index in chosen}
    victims, awaited = tuple(h.id for h in plan.victims), tuple(h.id for h in plan.awaited)
    return Reservation(job, start, holds, caps, victims, awaited)
