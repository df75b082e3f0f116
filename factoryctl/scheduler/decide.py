"""The scheduler's public entry point: frozen nodes and jobs in, frozen decisions out.

`schedule` is what `sched tick` and the controller call: it turns the model objects into the pass's fast
representation, runs `core.plan` with explanations on, and translates the outcome back into decisions that name
nodes and carry a readable reason. It also proposes preemptions when the policy allows them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from factoryctl.errors import FactoryError
from factoryctl.model.jobs import GpuAllocation, Job, JobState, Placement, SchedNode
from factoryctl.scheduler.core import Candidate, Running, Waiting, plan
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig, gang_shape
from factoryctl.scheduler.reasons import WaitExplainer, describe_start, shape_text


@dataclass(frozen=True)
class StartDecision:
    """Start this job now on exactly these GPUs (all ranks at once)."""

    job_id: str
    placement: Placement
    reason: str
    backfilled: bool = False


class WaitDecision(NamedTuple):
    """Keep this job queued, in `state` (PENDING or DEFERRED), for `reason`.

    An immutable named tuple rather than a frozen dataclass: a pass may leave 10,000 jobs waiting and this is
    four times cheaper to build.
    """

    job_id: str
    state: JobState
    reason: str
    reserved_start: float | None = None
    reserved_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreemptDecision:
    """Stop a running job (after `grace_s` to checkpoint) so a higher-priority one can start; it is requeued."""

    job_id: str
    for_job: str
    grace_s: float
    reason: str


@dataclass(frozen=True)
class Decisions:
    """Everything one pass decided.

    `protected` are the waiting jobs the starvation guard put first: pass them to the next `schedule` call so
    their protection (and reservation) is never withdrawn when newer jobs deepen the queue.
    """

    starts: tuple[StartDecision, ...]
    waits: tuple[WaitDecision, ...]
    preemptions: tuple[PreemptDecision, ...] = ()
    protected: frozenset[str] = frozenset()


def _allowed(job: Job, nodes: Sequence[SchedNode]) -> frozenset[int] | None:
    spec = job.spec
    if not spec.nodes and not spec.labels:
        return None
    names = set(spec.nodes)
    return frozenset(
        i
        for i, node in enumerate(nodes)
        if (not names or node.name in names) and all(node.labels.get(k) == v for k, v in spec.labels)
    )


_ACTIVE = frozenset({JobState.STARTING, JobState.RUNNING})
_WAITING = frozenset({JobState.PENDING, JobState.DEFERRED})


def _build(
    nodes: Sequence[SchedNode], jobs: Sequence[Job], now: float, config: SchedulerConfig
) -> tuple[FreeMap, list[Running], list[Candidate]]:
    usable = [n for n in nodes if n.schedulable]
    index = {n.name: i for i, n in enumerate(usable)}
    fm = FreeMap([n.name for n in usable], [n.gpus for n in usable], [n.topology_group for n in usable])
    running: list[Running] = []
    waiting: list[Job] = []
    for job in jobs:
        if job.state in _WAITING:
            waiting.append(job)
        elif job.state in _ACTIVE:
            running.append(_running(job, index, fm, now, config, len(running)))
    running.sort()
    node_size = max((n.gpus for n in nodes), default=0)
    waiting.sort(key=lambda j: (j.submitted_at, j.id))
    shapes: dict[tuple[int, int | None], tuple[int, int]] = {}
    queue: list[Candidate] = []
    for seq, job in enumerate(waiting):
        spec = job.spec
        shape_key = (spec.num_gpus, spec.gpus_per_node)
        shape = shapes.get(shape_key)
        if shape is None:
            shape = shapes[shape_key] = gang_shape(spec.num_gpus, spec.gpus_per_node, node_size)
        walltime = spec.walltime_s or config.default_walltime_s
        key = config.order_key(job.submitted_at, walltime, spec.priority, seq)
        allowed = _allowed(job, usable) if spec.nodes or spec.labels else None
        queue.append(
            Candidate(
                job.id, spec.num_gpus, shape[0], shape[1], walltime, job.submitted_at, key, spec.priority,
                allowed, spec.deferrable, spec.max_price, spec.deadline,
            )
        )  # fmt: skip
    queue.sort(key=_candidate_key)
    return fm, running, queue


def _candidate_key(candidate: Candidate) -> tuple[float, float, int]:
    return candidate.key


def _running(job: Job, index: Mapping[str, int], fm: FreeMap, now: float, config: SchedulerConfig, seq: int) -> Running:
    """Take a running job's GPUs off the map; its look-ahead entry ends at start + walltime (or now if overdue)."""
    alloc = tuple((index[a.node], a.gpus) for a in job.allocation if a.node in index)
    for node_index, gpus in alloc:
        if gpus > fm.free[node_index]:
            raise FactoryError(f"node {fm.names[node_index]} has more GPUs allocated than it has")
        fm.take(node_index, gpus)
    walltime = job.spec.walltime_s or config.default_walltime_s
    started = job.started_at if job.started_at is not None else now
    return (max(now, started + walltime), seq, alloc)


def schedule(
    nodes: Sequence[SchedNode],
    jobs: Sequence[Job],
    now: float,
    config: SchedulerConfig = POLICIES["default"],
    price: float | None = None,
    protected: Collection[str] = (),
) -> Decisions:
    """Decide what starts where at `now`.

    Args:
        nodes: every inventory node; down, drained and unhealthy ones receive nothing.
        jobs: queued (PENDING/DEFERRED) and running (STARTING/RUNNING, with allocations) jobs; others are ignored.
        now: unix seconds.
        config: the policy (`POLICIES["default"]` unless told otherwise).
        price: the current grid price per MWh, for deferrable jobs; None defers nothing.
        protected: `Decisions.protected` of the previous pass (the scheduler's only memory between passes).
    """
    fm, running, queue = _build(nodes, jobs, now, config)
    outcome = plan(fm, queue, running, now, config, price=price, explain=True, protected=protected)
    starts = tuple(
        StartDecision(
            s.job.id,
            Placement(tuple(GpuAllocation(fm.names[i], s.job.gpus) for i in s.chosen)),
            describe_start(s, fm),
            s.backfilled,
        )
        for s in outcome.started
    )
    explain = WaitExplainer(fm, now, price)
    waits = tuple(_wait(w, explain(w), fm) for w in outcome.waiting)
    preemptions: tuple[PreemptDecision, ...] = ()
    if config.preemption:
        preemptions = plan_preemptions(fm, outcome.waiting, jobs, config)
    still_waiting = outcome.protected.difference(s.job_id for s in starts)
    return Decisions(starts, waits, preemptions, frozenset(still_waiting))


def _wait(waiting: Waiting, reason: str, fm: FreeMap) -> WaitDecision:
    reservation = waiting.reservation
    return WaitDecision(
        waiting.job.id,
        waiting.state,
        reason,
        reservation.start if reservation else None,
        tuple(fm.names[i] for i in sorted(reservation.holds)) if reservation else (),
    )


def plan_preemptions(
    fm: FreeMap, waiting: Sequence[Waiting], jobs: Sequence[Job], config: SchedulerConfig
) -> tuple[PreemptDecision, ...]:
    """For the first waiting job that lacks resources, the fewest lowest-priority running jobs to stop for it.

    Only strictly lower-priority jobs are candidates, youngest first among equals (they lose the least work).
    Nothing is proposed when stopping every candidate would still not make room.
    """
    first = next((w.job for w in waiting if w.why in ("resources", "reserved")), None)
    if first is None:
        return ()
    index: Mapping[str, int] = {name: i for i, name in enumerate(fm.names)}
    victims = sorted(
        (j for j in jobs if j.state.active and j.spec.priority < first.priority),
        key=lambda j: (j.spec.priority, -(j.started_at or 0.0), j.id),
    )
    scratch = fm.copy()
    chosen: list[Job] = []
    for victim in victims:
        if scratch.fits(first.nodes, first.gpus, None, first.allowed):
            break
        chosen.append(victim)
        for alloc in victim.allocation:
            if alloc.node in index:
                scratch.give(index[alloc.node], alloc.gpus)
    if not chosen or not scratch.fits(first.nodes, first.gpus, None, first.allowed):
        return ()
    reason = f"preempted for higher-priority job {first.id} ({shape_text(first)})"
    return tuple(PreemptDecision(v.id, first.id, config.grace_s, reason) for v in chosen)
