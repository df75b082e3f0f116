"""The scheduler's public entry point: frozen nodes and jobs in, frozen decisions out.

`schedule` turns the model objects into the pass's fast representation, runs `core.plan` with explanations on,
and translates the outcome back into decisions that name nodes and carry a readable reason; it also proposes
preemptions when the policy allows them (the job they make room for holds a reservation in that pass, so backfill
cannot take the GPUs they free). The live passes (`factoryctl/jobs/tick.py`: `sched tick` and the controller)
carry its starts and preemptions out on the nodes; Python code may call it too (docs/scheduler.md, "From Python"),
and `sched explain` (through `replay_explain`) words its waiting jobs with `wait_decision`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from factoryctl.errors import FactoryError
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Placement, SchedNode, StopRequest
from factoryctl.scheduler.core import Candidate, ClaimFor, Reservation, Running, Started, Waiting, plan, queue_key
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig, gang_shape, split_gang
from factoryctl.scheduler.preempt import Holder, claim_reservation
from factoryctl.scheduler.reasons import (
    WaitExplainer,
    constraint_text,
    describe_start,
    describe_unplaceable,
    shape_text,
)
from factoryctl.scheduler.starvation import learned_walltime_use


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

    def stop_request(self, now: float) -> StopRequest:
        """What the executor puts on the job's record (`Job.stopping`) when it asks it to checkpoint at `now`."""
        return StopRequest(self.for_job, now, self.grace_s)


@dataclass(frozen=True)
class Decisions:
    """Everything one pass decided.

    `protected` are the waiting jobs the starvation guard put first: pass them to the next `schedule` call so
    their protection (and reservation) is never withdrawn when newer jobs deepen the queue. `claimer` is, with
    preemption, the job holding a reservation while room is made for it (stopping `preemptions`, or waiting for
    jobs ending within the grace period): pass it back too, so it stays first and keeps that reservation (its start
    never moves later, even once the jobs stopped for it ended on their own and no record says it claims).
    """

    starts: tuple[StartDecision, ...]
    waits: tuple[WaitDecision, ...]
    preemptions: tuple[PreemptDecision, ...] = ()
    protected: frozenset[str] = frozenset()
    claimer: str | None = None


class _Constraints:
    """The node indices each job constraint allows, computed once per distinct constraint and pass.

    10,000 queued jobs usually share a handful of constraints; a node set is resolved through a name index and
    labels through a per-label index, so even 10,000 different node sets cost O(set size) each, not O(nodes).
    """

    def __init__(self, nodes: Sequence[SchedNode]) -> None:
        """Index the schedulable nodes by name and by label."""
        self.index = {node.name: i for i, node in enumerate(nodes)}
        self.by_label: dict[tuple[str, str], set[int]] = {}
        for i, node in enumerate(nodes):
            for label in node.labels.items():
                self.by_label.setdefault(label, set()).add(i)
        self.known: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], frozenset[int]] = {}

    def allowed(self, spec: JobSpec) -> frozenset[int] | None:
        """None for an unconstrained job, else the indices of the nodes it may use (the same object for equals)."""
        if not spec.nodes and not spec.labels:
            return None
        key = (spec.nodes, spec.labels)
        found = self.known.get(key)
        if found is None:
            pool: set[int] | None = {self.index[n] for n in spec.nodes if n in self.index} if spec.nodes else None
            for label in spec.labels:
                matching = self.by_label.get(label, set())
                pool = set(matching) if pool is None else pool & matching
            found = self.known[key] = frozenset(pool or ())
        return found


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
    constraints = _Constraints(usable)
    queue: list[Candidate] = []
    for seq, job in enumerate(waiting):
        spec = job.spec
        shape_key = (spec.num_gpus, spec.gpus_per_node)
        shape = shapes.get(shape_key)
        if shape is None:
            shape = shapes[shape_key] = gang_shape(spec.num_gpus, spec.gpus_per_node, node_size)
        walltime = spec.walltime_s or config.default_walltime_s
        key = config.order_key(job.submitted_at, walltime, spec.priority, seq)
        allowed = constraints.allowed(spec)
        queue.append(
            Candidate(
                job.id, spec.num_gpus, shape[0], shape[1], walltime, job.submitted_at, key, spec.priority,
                allowed, spec.deferrable, spec.max_price, spec.deadline,
            )
        )  # fmt: skip
    queue.sort(key=queue_key)
    return fm, running, queue


def _running(job: Job, index: Mapping[str, int], fm: FreeMap, now: float, config: SchedulerConfig, seq: int) -> Running:
    """Take a running job's GPUs off the map; its look-ahead entry ends at start + walltime (or now if overdue).

    A job being stopped (`Job.stopping`) frees its GPUs at its stop if that comes first.
    """
    alloc = tuple((index[a.node], a.gpus) for a in job.allocation if a.node in index)
    for node_index, gpus in alloc:
        if gpus > fm.free[node_index]:
            raise FactoryError(f"node {fm.names[node_index]} has more GPUs allocated than it has")
        fm.take(node_index, gpus)
    walltime = job.spec.walltime_s or config.default_walltime_s
    started = job.started_at if job.started_at is not None else now
    end = started + walltime if job.stopping is None else min(started + walltime, job.stopping.stops_at)
    return (max(now, end), seq, alloc)


def learned_config(config: SchedulerConfig, jobs: Sequence[Job]) -> SchedulerConfig:
    """`config` with its `walltime_use` learned from the finished jobs in `jobs`, as the replay learns it.

    The last `walltime_use_window` jobs to end, run time over walltime (`starvation.learned_walltime_use`); with
    fewer finished, or a policy with no starvation guard, `config` as it is. Only runs that say how long the work
    needed count: jobs that succeeded, and failed ones stopped at their walltime. A job that failed early (a crash
    loop fails a hundred in a minute) or was cancelled says nothing of it, and would drag the share to nothing.
    """
    if not config.walltime_use_window or config.starve_after_s is None:
        return config
    ended = sorted(
        (job.ended_at, job.ended_at - job.started_at, job.spec.walltime)
        for job in jobs
        if job.started_at is not None
        and job.ended_at is not None
        and _ran_its_course(job.state, job.ended_at - job.started_at, job.spec.walltime)
    )
    use = learned_walltime_use(((ran, walltime) for _, ran, walltime in ended), config.walltime_use_window)
    return config if use is None or use == config.walltime_use else replace(config, walltime_use=use)


def _ran_its_course(state: JobState, ran: float, walltime: float) -> bool:
    """Succeeded, or failed at its walltime (the executor stops it there): a run that tells how long work takes."""
    return state is JobState.SUCCEEDED or (state is JobState.FAILED and ran >= walltime * _AT_WALLTIME)


#: A failed run this close to its walltime was stopped by it (the executor's stop takes a moment).
_AT_WALLTIME = 0.99


def schedule(
    nodes: Sequence[SchedNode],
    jobs: Sequence[Job],
    now: float,
    config: SchedulerConfig = POLICIES["default"],
    price: float | None = None,
    protected: Collection[str] = (),
    claimer: str | None = None,
) -> Decisions:
    """Decide what starts where at `now`.

    Args:
        nodes: every inventory node; down, drained and unhealthy ones receive nothing.
        jobs: queued (PENDING/DEFERRED) and running (STARTING/RUNNING, with allocations; `stopping` set on those
            the executor is stopping for a preempting job, see `PreemptDecision.stop_request`) jobs; finished ones
            (succeeded, or failed at their walltime) teach the policy how much of their walltimes jobs really run
            (`learned_config`); others are ignored.
        now: unix seconds.
        config: the policy (`POLICIES["default"]` unless told otherwise).
        price: the current grid price per MWh, for deferrable jobs; None defers nothing.
        protected: `Decisions.protected` of the previous pass (the scheduler's memory between passes).
        claimer: `Decisions.claimer` of the previous pass (with preemption, the rest of that memory: the claim it
            names is under way, so its reservation never moves later).
    """
    config = learned_config(config, jobs)
    fm, running, queue = _build(nodes, jobs, now, config)
    claimer = claimer if config.preemption else None
    claim_for = preemption_claims(fm, jobs, config, now, claimer) if config.preemption else None
    outcome = plan(
        fm, queue, running, now, config, price=price, explain=True, protected=protected, claim_for=claim_for,
        claimer=claimer,
    )  # fmt: skip
    starts = tuple(_start_decision(s, fm, len(outcome.reservations)) for s in outcome.started)
    explain = WaitExplainer(fm, now, price)
    by_id = {job.id: job for job in jobs} if any(w.why == "never" for w in outcome.waiting) else {}
    counted: dict[tuple[Any, ...], tuple[int, int, tuple[str, ...]]] = {}
    waits = tuple(
        wait_decision(w, _unplaceable(w.job, by_id[w.job.id], nodes, counted) if w.why == "never" else explain(w), fm)
        for w in outcome.waiting
    )
    preemptions = plan_preemptions(outcome.claim, config)
    still_waiting = outcome.protected.difference(s.job_id for s in starts)
    claim = outcome.claim
    return Decisions(starts, waits, preemptions, frozenset(still_waiting), claim.job.id if claim else None)


def _start_decision(started: Started, fm: FreeMap, reservations: int) -> StartDecision:
    """A start of the pass as a decision: the GPUs it takes on each node, and why there."""
    gpus = split_gang(started.job.num_gpus, len(started.chosen))
    allocation = tuple(GpuAllocation(fm.names[i], n) for i, n in zip(started.chosen, gpus, strict=True))
    return StartDecision(
        started.job.id, Placement(allocation), describe_start(started, fm, reservations), started.backfilled
    )


def _unplaceable(
    candidate: Candidate,
    job: Job,
    nodes: Sequence[SchedNode],
    counted: dict[tuple[Any, ...], tuple[int, int, tuple[str, ...]]],
) -> str:
    """The reason for a job the schedulable nodes cannot hold: down/drained nodes, a constraint, or too large.

    The node counts depend only on the job's constraint and shape: `counted` keeps them for the pass, so 10,000
    jobs held back by drained nodes cost one scan of the nodes per distinct constraint, not one each.
    """
    spec = job.spec
    key = (spec.nodes, spec.labels, candidate.gpus)
    if key not in counted:
        names = set(spec.nodes)
        matching = [
            n for n in nodes if (not names or n.name in names) and all(n.labels.get(k) == v for k, v in spec.labels)
        ]
        big = [n for n in matching if n.gpus >= candidate.gpus]
        counted[key] = (len(matching), len(big), tuple(n.name for n in big if not n.heard))
    matching_count, big_enough, unheard = counted[key]
    constraint = constraint_text(spec.nodes, spec.labels)
    return describe_unplaceable(candidate, constraint, matching_count, big_enough, unheard)


def wait_decision(waiting: Waiting, reason: str, fm: FreeMap) -> WaitDecision:
    """A waiting job as a decision: its state, the reason, and the start and nodes reserved for it (if any)."""
    reservation = waiting.reservation
    return WaitDecision(
        waiting.job.id,
        waiting.state,
        reason,
        reservation.start if reservation else None,
        tuple(fm.names[i] for i in sorted(reservation.holds)) if reservation else (),
    )


def _ends_by(job: Job, now: float, config: SchedulerConfig) -> float:
    """When a running job's walltime ends; never (inf) for one already past it: its end is unknown, not waited for.

    One whose walltime ends at this very instant is not past it: the executor stops it now, so it is waited for
    (stopping it instead would requeue a job that had used its walltime up and give it a grace period beyond it).
    """
    end = (job.started_at if job.started_at is not None else now) + (job.spec.walltime_s or config.default_walltime_s)
    return end if end >= now else float("inf")


def _stops_by(job: Job, stop: StopRequest, now: float, config: SchedulerConfig) -> float:
    """When a job being stopped frees its GPUs: its stop, or its walltime's end if sooner (now if both are past)."""
    return max(now, min(stop.stops_at, _ends_by(job, now, config)))


def preemption_claims(
    fm: FreeMap, jobs: Sequence[Job], config: SchedulerConfig, now: float, claimer: str | None = None
) -> ClaimFor:
    """The pass's `claim_for`: the reservation the first job short of room holds while preemption makes room.

    It is `preempt.claim_reservation` (shared with the simulator) over the running jobs of strictly lower priority
    than that job, holding GPUs on schedulable nodes it may use: the lowest priority and youngest are stopped,
    every one of them necessary, and a job whose walltime ends within the grace period is waited for, not stopped.
    The pass gives the job that reservation before any backfill, so backfill cannot take the GPUs it makes room on
    (a job ending before the reserved start still may). Jobs being stopped already (`Job.stopping`) are never
    proposed again: those stopped for this job, or for one that left the queue, are waited for until their stop
    (`_claim_holders`), so the reservation stays where the stops put it, and further victims are proposed only if
    they do not make room. `claimer` is the previous pass's claimer (`schedule`'s): its claim is under way, even
    once every job stopped for it ended on its own.
    """
    index: Mapping[str, int] = {name: i for i, name in enumerate(fm.names)}
    active = [job for job in jobs if job.state.active]
    queued = frozenset(job.id for job in jobs if job.state in _WAITING)

    def claim_for(free: FreeMap, first: Candidate) -> Reservation | None:
        holders, stopping = _claim_holders(active, queued, first, index, now, config, first.id == claimer)
        if not holders:
            return None
        reservation = claim_reservation(free, first, holders, now, config.grace_s)
        if reservation is None or not stopping.intersection(reservation.awaited):
            return reservation
        return replace(
            reservation,
            awaited=tuple(i for i in reservation.awaited if i not in stopping),
            stopping=tuple(i for i in reservation.awaited if i in stopping),
        )

    return claim_for


def _claim_holders(
    active: Sequence[Job],
    queued: frozenset[str],
    first: Candidate,
    index: Mapping[str, int],
    now: float,
    config: SchedulerConfig,
    under_way: bool,
) -> tuple[list[Holder], set[str]]:
    """The running jobs `first` may stop or wait for, as `Holder`s, and the ids of those being stopped it waits for.

    Jobs of lower priority may be stopped, except those being stopped already: for another queued job they are left
    out (as the replay leaves out gangs in a grace period); for `first`, or for a job no longer in `queued`
    (cancelled, or started elsewhere: nobody else will take their GPUs), they are waited for until their stop, never
    stopped again. While its claim is under way (`under_way`: it was the previous pass's claimer; or jobs are being
    stopped for it), the jobs of any priority that end within the grace period (or by the last of those stops) are
    waited for too: its reservation let them start on its GPUs because they end by its start, which is never later
    than a grace period after now (the replay's claim takes their GPUs over as they end). `make_room` keeps only
    those needed, latest end dropped first, so the start is the last pass's or sooner. Once every job stopped for it
    ended on its own before its stop, only `under_way` says so (planned afresh, it then waited for no such job of its
    priority, stopped another job and moved its start later).
    """

    def holder(job: Job, ends_by: float, stoppable: bool = True) -> Holder:
        held = tuple((index[a.node], a.gpus) for a in job.allocation if a.node in index)
        return Holder(job.id, job.spec.priority, job.started_at or 0.0, held, ends_by, stoppable)

    awaited = {
        job.id: job.stopping
        for job in active
        if job.stopping is not None and (job.stopping.for_job == first.id or job.stopping.for_job not in queued)
    }
    holders = [holder(job, _stops_by(job, awaited[job.id], now, config), False) for job in active if job.id in awaited]
    stops = [stop.stops_at for stop in awaited.values() if stop.for_job == first.id]
    ready = max([now + config.grace_s, *stops]) if under_way or stops else None
    for job in active:
        if job.stopping is not None:
            continue
        end = _ends_by(job, now, config)
        if job.spec.priority < first.priority:
            holders.append(holder(job, end))
        elif ready is not None and end <= ready:
            holders.append(holder(job, end, False))
    return holders, set(awaited)


def plan_preemptions(claim: Reservation | None, config: SchedulerConfig) -> tuple[PreemptDecision, ...]:
    """The jobs to stop for the pass's claim (`PassOutcome.claim`): its victims, none when it only waits."""
    if claim is None:
        return ()
    first = claim.job
    reason = f"preempted for higher-priority job {first.id} ({shape_text(first)})"
    return tuple(PreemptDecision(victim, first.id, config.grace_s, reason) for victim in claim.victims)
