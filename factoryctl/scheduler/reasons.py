"""Sentences for people: why a job started where it did, or why it still waits.

Operators read these in `sched explain` today ("waiting for 2 nodes with 8 free GPUs in rack a; reserved start
in ~40 min"), and `decide.schedule` puts them on every decision it returns, so they name counts, places and times,
never internal codes: `jobs list` prints them as each live job's reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from factoryctl.model.jobs import iso_utc
from factoryctl.scheduler.core import Candidate, Started, Waiting
from factoryctl.scheduler.freemap import FreeMap

_DIGITS = re.compile(r"(\d+)")


def human_duration(seconds: float) -> str:
    """`12 s`, `~40 min`, `~3 h`, `~2 d`: whole seconds under a minute, rounded above.

    Rounded because a reserved start an hour away is an estimate; nobody plans it by the second.
    """
    if seconds <= 0:
        return "now"
    if seconds < 59.5:
        return f"{seconds:.0f} s" if seconds >= 0.5 else "under 1 s"
    if seconds < 90:
        return "~1 min"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"~{round(seconds / 3600)} h"
    return f"~{round(seconds / 86400)} d"


def from_now(seconds: float) -> str:
    """`in ~40 min`, or `now` for a time already come (`in now` read wrong: a reservation at this very pass)."""
    return f"in {human_duration(seconds)}" if seconds > 0 else "now"


def shape_text(job: Candidate) -> str:
    """`1 node with 4 free GPUs` / `2 nodes with 8 free GPUs`."""
    plural = "node" if job.nodes == 1 else "nodes"
    return f"{job.nodes} {plural} with {job.gpus} free GPU{'s' if job.gpus != 1 else ''}"


def natural_order(names: Iterable[str]) -> list[str]:
    """Node names as a person counts them: `n2` before `n10` (a gang's nodes are chosen in no such order)."""
    return sorted(names, key=lambda name: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(name)])


def _places(indices: Sequence[int], fm: FreeMap) -> str:
    """The nodes at `indices`, in natural order, with their rack when they share one."""
    groups = sorted({fm.groups[i] for i in indices if fm.groups[i]})
    where = ", ".join(natural_order(fm.names[i] for i in indices))
    if len(groups) == 1:
        return f"{where} (rack {groups[0]})"
    return where


def describe_start(started: Started, fm: FreeMap, reservations: int = 0) -> str:
    """Why and where a job starts (`reservations`: how many reserved starts the pass made)."""
    if not started.backfilled:
        return f"started on {_places(started.chosen, fm)}"
    tail = "; it delays no reservation" if reservations else ""
    return f"backfilled on {_places(started.chosen, fm)}, ahead of jobs that do not fit yet{tail}"


def _some(names: Sequence[str]) -> str:
    """Names for a sentence, a long list shortened: `n1,n2,n3,n4,... (9 nodes)`."""
    return ",".join(names[:4]) + (f",... ({len(names)} nodes)" if len(names) > 4 else "")


def constraint_text(nodes: Sequence[str], labels: Sequence[tuple[str, str]]) -> str:
    """`node set n1,n2` / `labels pool=train` / both; long node sets are shortened."""
    parts = []
    if nodes:
        parts.append(f"node set {_some(nodes)}")
    if labels:
        parts.append("labels " + ",".join(f"{k}={v}" for k, v in labels))
    return " and ".join(parts)


#: How the store comes to hear from a node: said in the reason of a job that waits for such nodes.
HEARD_FROM = "`factoryctl telemetry collect --once` or `factoryctl controller run` samples them"


def describe_unplaceable(
    job: Candidate, constraint: str, matching: int, big_enough: int, unheard: Sequence[str] = ()
) -> str:
    """Why a job cannot be placed on today's schedulable nodes, and whether it ever could.

    `matching` counts the inventory nodes its constraint allows (all of them without one), `big_enough` those with
    enough GPUs in total; both include nodes that are down, drained or unhealthy now. `unheard` names those of the
    big enough nodes the store has never heard from (no sample yet: a fresh factory before its first sweep), which
    wait for a sample rather than for a repair, so the reason says how they get one.
    """
    among = f" among the nodes of its {constraint}" if constraint else ""
    if constraint and not matching:
        return f"can never run here: no node matches its {constraint}"
    if big_enough >= job.nodes:
        needs = f"needs {shape_text(job)}{among}"
        if unheard and len(unheard) >= big_enough:
            return f"waiting for nodes the store has never heard from ({_some(unheard)}: {HEARD_FROM}): {needs}"
        if unheard:
            others = f"never heard from ({_some(unheard)}: {HEARD_FROM})"
            return f"waiting for nodes that are down, drained, unhealthy or {others}: {needs}"
        return f"waiting for nodes that are down, drained or unhealthy: {needs}"
    return f"can never run here: needs {shape_text(job)}{among}, and the cluster has fewer"


class WaitExplainer:
    """`describe_wait` for a whole queue, sharing the per-shape work (a pass may leave 10,000 jobs waiting)."""

    def __init__(self, fm: FreeMap, now: float, price: float | None) -> None:
        """Explain against the free GPUs left after the pass."""
        self.fm = fm
        self.now = now
        self.price = price
        self.plain: dict[tuple[str, int, int, int, str | None], str] = {}

    def __call__(self, waiting: Waiting) -> str:
        """The reason for one waiting job."""
        job = waiting.job
        if waiting.reservation is not None or waiting.why == "deferred":
            return describe_wait(waiting, self.fm, self.now, self.price)
        key = (waiting.why, job.nodes, job.gpus, id(job.allowed), waiting.blocker)
        text = self.plain.get(key)
        if text is None:
            text = self.plain[key] = describe_wait(waiting, self.fm, self.now, self.price)
        return text


def describe_wait(waiting: Waiting, fm: FreeMap, now: float, price: float | None) -> str:
    """Why a job is still queued."""
    job = waiting.job
    if waiting.why == "deferred":
        until = "" if job.deadline is None else f" (it runs anyway in time for its deadline, {iso_utc(job.deadline)})"
        return f"deferred: grid price {price:g} is above its max_price {job.max_price:g}{until}"
    if waiting.why == "never":
        return f"can never run here: needs {shape_text(job)} and the schedulable nodes cannot provide them"
    if waiting.why == "blocked":
        return f"queued behind job {waiting.blocker} (this policy starts jobs strictly in queue order)"
    have = fm.count_at_least(job.gpus) if job.allowed is None else sum(1 for i in job.allowed if fm.free[i] >= job.gpus)
    text = f"waiting for {shape_text(job)} ({have} now)"
    reservation = waiting.reservation
    if reservation is not None:
        nodes = sorted(reservation.holds)
        text += f"; reserved start {from_now(reservation.start - now)} on {_places(nodes, fm)}"
        text += _making_room(reservation.victims, reservation.awaited, reservation.stopping)
    elif have >= job.nodes:
        text += "; starting it now would delay a reserved job"
    return text


def _making_room(victims: Sequence[str], awaited: Sequence[str], stopping: Sequence[str] = ()) -> str:
    """`: preempting A, B (and waiting for C, ending within the grace period)`, as a claim says; "" for none.

    For a reservation held while preemption makes room (`preempt.claim_reservation`); jobs the executor is stopping
    for it already (live only) read `waiting for D to stop`.
    """
    waits = [f"{', '.join(stopping)} to stop"] if stopping else []
    if awaited:
        waits.append(f"{', '.join(awaited)}, ending within the grace period")
    waiting = "waiting for " + " and for ".join(waits)
    if victims:
        return f": preempting {', '.join(victims)}" + (f" (and {waiting})" if waits else "")
    return f": {waiting}" if waits else ""
