"""Which running jobs to stop for a higher-priority one: the victim choice, written once.

The live scheduler (`decide.plan_preemptions`, which proposes preemptions to the executor) and the trace simulator
(`preempt_replay`, which carries them out on a simulated clock) must stop the same jobs for the same situation, or
the simulator would evaluate a policy nobody runs. Both describe the running gangs as `Holder` records over the
pass's `FreeMap` and call `choose_victims`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from factoryctl.scheduler.core import Candidate
from factoryctl.scheduler.freemap import FreeMap


class Holder(NamedTuple):
    """A running gang preemption could stop: its id, priority, start time and GPUs per schedulable node index."""

    id: str
    priority: int
    started_at: float
    held: tuple[tuple[int, int], ...]


def _freed(holder: Holder, allowed: frozenset[int] | None) -> list[tuple[int, int]]:
    """The GPUs stopping `holder` would free on the nodes the waiting job may use."""
    return [(index, gpus) for index, gpus in holder.held if allowed is None or index in allowed]


def choose_victims(fm: FreeMap, job: Candidate, holders: Iterable[Holder]) -> list[Holder]:
    """A minimal set of strictly lower-priority gangs whose GPUs, added to `fm`'s free ones, let `job` fit.

    Candidates are the holders of GPUs `job` may use, lowest priority and youngest first (they lose the least
    work). After enough are found, any that turn out not to be needed are put back, the most valuable first, so
    every job stopped is necessary. Empty when stopping every candidate would still not make room (or when `job`
    fits already). `fm` is not changed.
    """
    allowed = job.allowed
    candidates = sorted(
        (h for h in holders if h.priority < job.priority and _freed(h, allowed)),
        key=lambda h: (h.priority, -h.started_at, h.id),
    )
    scratch = fm.copy()
    chosen: list[Holder] = []
    for victim in candidates:
        if scratch.fits(job.nodes, job.gpus, None, allowed):
            break
        chosen.append(victim)
        for index, gpus in _freed(victim, allowed):
            scratch.give(index, gpus)
    if not chosen or not scratch.fits(job.nodes, job.gpus, None, allowed):
        return []
    for victim in reversed(list(chosen)):  # the most valuable first: keep it running if the others suffice
        for index, gpus in _freed(victim, allowed):
            scratch.take(index, gpus)
        if scratch.fits(job.nodes, job.gpus, None, allowed):
            chosen.remove(victim)
        else:
            for index, gpus in _freed(victim, allowed):
                scratch.give(index, gpus)
    return chosen


def place_after(fm: FreeMap, job: Candidate, victims: Iterable[Holder]) -> list[int] | None:
    """Where `job` will run once `victims` are stopped: the usual placement on the free GPUs plus theirs."""
    scratch = fm.copy()
    for victim in victims:
        for index, gpus in victim.held:
            scratch.give(index, gpus)
    return scratch.place(job.nodes, job.gpus, None, job.allowed)
