"""The records one scheduling pass reads and writes: queued jobs reduced to what the pass needs, its decisions.

Kept apart from `core` (which re-exports them) so the pass's loop is not buried under its data types; `shapequeue`
and the simulator build on them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

from factoryctl.model.jobs import JobState

#: A running gang as the look-ahead sees it: (expected end, sequence, ((node index, GPUs), ...)).
Running = tuple[float, int, tuple[tuple[int, int], ...]]

#: A queued job's place in its queue: a queue is sorted by it (`SchedulerConfig.order_key`).
queue_key = attrgetter("key")


class Candidate(NamedTuple):
    """A queued job reduced to what a pass needs (shape in nodes x GPUs, walltime, order key).

    A named tuple rather than a dataclass: a pass over 10,000 jobs builds 10,000 of these, and tuples are cheap.
    """

    id: str
    num_gpus: int
    nodes: int
    gpus: int
    walltime: float
    submitted_at: float
    key: tuple[float, float, int]
    priority: int = 0
    allowed: frozenset[int] | None = None
    deferrable: bool = False
    max_price: float | None = None
    deadline: float | None = None


@dataclass
class Reservation:
    """A reserved start for one waiting job: when, on which nodes, and what jobs running past it may still take.

    With preemption, the first job short of room may hold one while it makes room (`preempt.claim_reservation`):
    `victims` are the ids of the running jobs it stops, `awaited` those it waits for (they end within the grace
    period), `stopping` those it waits for while the executor stops them for it (the live `schedule()` only), and
    `start` is when they have all freed their GPUs.
    """

    job: Candidate
    start: float
    holds: dict[int, int]
    caps: dict[int, int]
    victims: tuple[str, ...] = ()
    awaited: tuple[str, ...] = ()
    stopping: tuple[str, ...] = ()


@dataclass(frozen=True)
class Started:
    """A job the pass starts: the nodes chosen (indices into the FreeMap) and whether it was backfilled."""

    job: Candidate
    chosen: tuple[int, ...]
    backfilled: bool


class Waiting(NamedTuple):
    """A job left in the queue, why (a short code for `reasons`), and its reservation if it has one."""

    job: Candidate
    state: JobState
    why: str
    reservation: Reservation | None = None
    blocker: str | None = None


@dataclass
class PassOutcome:
    """Everything one pass decided. `waiting` is only filled when the caller asked for explanations.

    `protected` are the starving jobs the pass put first (started or not): give them back to the next pass.
    `first_short` is the first job, in the order the pass considered them, that could run here but found no room
    now (neither deferred nor too large for the schedulable nodes): the one preemption would make room for.
    `claim` is its reservation while it makes room (also in `reservations`), when the pass was given `claim_for`.
    """

    started: list[Started] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    protected: set[str] = field(default_factory=set)
    first_short: Candidate | None = None
    claim: Reservation | None = None


def is_deferred(job: Candidate, now: float, price: float | None) -> bool:
    """A deferrable job waits while the price is above its maximum, unless waiting would miss its deadline."""
    if not job.deferrable or price is None or job.max_price is None or price <= job.max_price:
        return False
    return job.deadline is None or now + job.walltime < job.deadline
