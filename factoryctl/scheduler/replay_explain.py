"""What the scheduler would say at one instant of a trace replay: every job's state and the reason for it.

`sched simulate` reports averages; an operator comparing policies also wants to ask "why is this job still
waiting on day 3?". This replays the trace up to that time with the simulator (the same passes, so the same
state), then runs the pass at that time with explanations on, exactly as the live scheduler explains its
decisions (`decide.schedule` uses the same `describe_start` and `WaitExplainer`). Pure code: no IO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from factoryctl.errors import UsageError
from factoryctl.model.jobs import SchedNode
from factoryctl.scheduler.core import PassOutcome, Reservation
from factoryctl.scheduler.decide import wait_decision
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import SchedulerConfig, split_gang
from factoryctl.scheduler.preempt_replay import PreemptingReplay
from factoryctl.scheduler.reasons import WaitExplainer, describe_start, from_now, human_duration, natural_order
from factoryctl.scheduler.simulate import JobRecord, Progress, Rejected, Replay, drive, new_replay
from factoryctl.scheduler.trace import TraceJob


@dataclass(frozen=True)
class JobAtInstant:
    """One job as the scheduler sees it at the explained instant.

    `state` is a job state (`RUNNING`: started earlier, `STARTING`: starts at that instant, or, with preemption,
    holds its GPUs while the jobs it preempts checkpoint and starts at `start_s`; `PENDING` or `DEFERRED`: queued,
    `SUCCEEDED`: ended earlier), or `NOT_SUBMITTED` (submitted later) or `REJECTED` (larger than the cluster: the
    replay skips it). `allocation` is the GPUs it holds per node; `reserved_start_s` and `reserved_nodes` are set
    when the pass reserved a start for it; `waited_s` is its queueing time so far (for a job preempted earlier,
    without the time it ran).
    """

    job_id: str
    state: str
    num_gpus: int
    submit_s: float
    start_s: float | None
    allocation: tuple[tuple[str, int], ...]
    reason: str
    reserved_start_s: float | None = None
    reserved_nodes: tuple[str, ...] = ()
    waited_s: float | None = None


@dataclass(frozen=True)
class Explanation:
    """What `explain_at` found.

    `rejected` are the trace's jobs the cluster can never hold (the replay skips them, whenever they arrive);
    `last_end_s` is when the last job that ended by then ended (None if none did).
    """

    jobs: list[JobAtInstant]
    rejected: list[Rejected]
    last_end_s: float | None


def explain_at(
    trace: Sequence[TraceJob],
    nodes: Sequence[SchedNode],
    config: SchedulerConfig,
    at: float,
    job_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Explanation:
    """Replay `trace` up to `at` under `config` and explain the pass at `at`: running, starting, then queued jobs.

    Queued jobs come in the order the pass considered them (protected starving jobs first, then the policy's
    order); backfill may start later ones first. With `job_ids`, just those jobs (each once, in that order),
    whatever their state (done, submitted later, never runnable here); an id the trace lacks is a usage error.
    `progress` hears how far the replay's arrivals have got.
    """
    by_id = {job.job_id: job for job in trace}
    missing = [job_id for job_id in job_ids or () if job_id not in by_id]
    if missing:
        raise UsageError(
            f"job {missing[0]!r} is not in the trace.",
            "give --job a job_id from the trace's first column, and repeat --job for more than one.",
        )
    replay = new_replay(nodes, config)
    replay.keeps_started = True  # a running job's walltime end is explained (`_walltime_end`)
    rejected = [refused for refused in map(replay.refusal, trace) if refused is not None]
    drive(replay, trace, until=at, progress=progress)
    event = any(job.submit_s == at for job in trace) or any(at in (r.start_s, r.end_s) for r in replay.records)
    starting, queued, claim = _passes_at(replay, at, event)
    passed = {job.job_id for job in starting}
    ended = {r.job_id: r for r in replay.records if r.end_s <= at}
    last_end = max((r.end_s for r in ended.values()), default=None)
    running = [_ran(r, "RUNNING", at, _walltime_end(replay, r)) for r in replay.records if r.start_s < at < r.end_s]
    resumed = [_resumed(r) for r in replay.records if r.start_s == at and r.job_id not in passed]  # claims settled
    claiming: list[JobAtInstant] = []
    if isinstance(replay, PreemptingReplay):
        running, queued, claiming = _preemption(replay, running, queued, at, claim)
        queued = _requeued(queued, replay, at)
    shown = running + resumed + starting + claiming + queued
    if job_ids is not None:
        by_seen = {job.job_id: job for job in shown}
        reasons = {r.job_id: r.reason for r in rejected}
        shown = [_named(by_id[job_id], by_seen, ended, reasons, at) for job_id in dict.fromkeys(job_ids)]
    return Explanation(_with_waits(shown, replay.records, at), rejected, last_end)


def _preemption(
    replay: PreemptingReplay,
    running: list[JobAtInstant],
    queued: list[JobAtInstant],
    at: float,
    claim: Reservation | None,
) -> tuple[list[JobAtInstant], list[JobAtInstant], list[JobAtInstant]]:
    """Running jobs in a grace period say so; jobs waiting for their victims' grace periods leave the queue.

    `claim` is the explained pass's reservation for a job making room: the jobs it waits for (they end within the
    grace period) say that it waits for them, and that it holds a reservation meanwhile.
    """
    stopping = replay.stopping()
    for i, job in enumerate(running):
        if claim is not None and job.job_id in claim.awaited and job.job_id not in stopping:
            running[i] = dataclasses.replace(job, reason=_awaited(replay, job.job_id, claim, at))
        if job.job_id in stopping:
            for_job, stop, end, stopped = stopping[job.job_id]
            where = " ".join(f"{node}:{gpus}" for node, gpus in job.allocation)
            if not stopped:
                reason = (
                    f"ends within the grace period, at {end:.0f} s ({from_now(end - at)}): job {for_job} waits for it"
                )
            elif end <= stop:
                reason = (
                    f"preempted for job {for_job}, but ends on its own first, at {end:.0f} s ({from_now(end - at)})"
                )
            else:
                reason = f"preempted for job {for_job}: checkpointing on {where}, stops at {stop:.0f} s"
                reason += f" ({from_now(stop - at)})"
            running[i] = dataclasses.replace(job, reason=reason)
    claiming = []
    for claimer, chosen, start, victims, awaited in replay.claiming():
        allocation = tuple(
            zip((replay.fm.names[i] for i in chosen), split_gang(claimer.num_gpus, len(chosen)), strict=True)
        )
        also = f" (and waiting for {', '.join(awaited)}, ending within the grace period)" if awaited else ""
        they = "it has" if len(victims) + len(awaited) == 1 else "they have"
        reason = (
            f"preempting {', '.join(victims)}{also}: takes over {', '.join(natural_order(n for n, _ in allocation))}"
            f" and starts at {start:.0f} s ({from_now(start - at)}), when {they} stopped"
        )
        claiming.append(
            JobAtInstant(claimer.id, "STARTING", claimer.num_gpus, claimer.submitted_at, start, allocation, reason)
        )
    claimed = {job.job_id for job in claiming}
    return running, [job for job in queued if job.job_id not in claimed], claiming


def _requeued(queued: list[JobAtInstant], replay: PreemptingReplay, at: float) -> list[JobAtInstant]:
    """Queued jobs that ran before were preempted: their reasons say when, and by which job when that is clear.

    A job is only queued again when a claim stopped it (at its last segment's end), and the claiming job starts at
    that very instant on some of its nodes; it is named when exactly one job of higher priority does so.
    """
    last_run = {r.job_id: r for r in replay.records if r.end_s <= at}  # records come in start order: the latest
    starts: dict[float, list[JobRecord]] = {}
    for record in replay.records:
        starts.setdefault(record.start_s, []).append(record)
    found = []
    for job in queued:
        stopped = last_run.get(job.job_id)
        if stopped is None:
            found.append(job)
            continue
        nodes, priority = {node for node, _ in stopped.allocation}, replay.by_id[job.job_id].priority
        by = [
            r.job_id
            for r in starts.get(stopped.end_s, ())
            if replay.by_id[r.job_id].priority > priority and nodes & {node for node, _ in r.allocation}
        ]
        who = f" by job {by[0]}" if len(by) == 1 else ""
        when = f"{stopped.end_s:.0f} s ({_ago(at - stopped.end_s)})"
        found.append(dataclasses.replace(job, reason=f"preempted{who} at {when} and queued again; {job.reason}"))
    return found


def _awaited(replay: PreemptingReplay, job_id: str, claim: Reservation, at: float) -> str:
    """A running job the explained pass's claim waits for: it ends within the grace period; the claim's reservation."""
    end = next(gang.end for gang in replay.gangs.values() if gang.holder.id == job_id)
    where = ", ".join(natural_order(replay.fm.names[i] for i in claim.holds))
    return (
        f"ends within the grace period, at {end:.0f} s ({from_now(end - at)}): job {claim.job.id} waits for it,"
        f" holding a reservation on {where} from {claim.start:.0f} s"
    )


def _with_waits(jobs: list[JobAtInstant], records: Sequence[JobRecord], at: float) -> list[JobAtInstant]:
    """`jobs` with `waited_s`: from submission to their start (or to `at`), less the time earlier run segments took."""
    segments: dict[str, list[JobRecord]] = {}
    for record in records:
        segments.setdefault(record.job_id, []).append(record)
    found = []
    for job in jobs:
        if job.state in ("NOT_SUBMITTED", "REJECTED"):
            found.append(job)
            continue
        until = at if job.start_s is None else min(job.start_s, at)
        ran = sum(r.end_s - r.start_s for r in segments.get(job.job_id, ()) if r.end_s <= until)
        found.append(dataclasses.replace(job, waited_s=until - job.submit_s - ran))
    return found


def _passes_at(
    replay: Replay, at: float, event: bool
) -> tuple[list[JobAtInstant], list[JobAtInstant], Reservation | None]:
    """The passes the replay runs at `at`, explained: the jobs they start, the jobs left waiting after the last.

    Also the last pass's reservation for a job making room by preemption (`PassOutcome.claim`), if any.

    These are the replay's own passes (`Replay.schedule`), with explanations on. Usually one; another follows while
    something is due at that very instant (a zero-length job's end, a claim with no grace period), as in `drive`.
    """
    starting: list[JobAtInstant] = []
    while True:
        outcome = replay.schedule(at, explain=True, follow_up=event)
        starting += _starting(outcome, replay.fm, at)
        if replay.next_event() > at:
            return starting, _queued(outcome, replay.fm, at), outcome.claim
        replay.finish_until(at)  # a zero-length job ended, or (grace 0) a claim settled: the replay runs again


def _starting(outcome: PassOutcome, fm: FreeMap, at: float) -> list[JobAtInstant]:
    """The jobs the explained pass starts, where, and why there (as `decide.schedule` words it)."""
    found = []
    for started in outcome.started:
        job = started.job
        gpus = split_gang(job.num_gpus, len(started.chosen))
        allocation = tuple(zip((fm.names[i] for i in started.chosen), gpus, strict=True))
        reason = describe_start(started, fm, len(outcome.reservations))
        found.append(JobAtInstant(job.id, "STARTING", job.num_gpus, job.submitted_at, at, allocation, reason))
    return found


def _queued(outcome: PassOutcome, fm: FreeMap, at: float) -> list[JobAtInstant]:
    """The jobs left waiting, in the order the pass considered them, with their reasons and reservations."""
    explain = WaitExplainer(fm, at, None)
    found = []
    for waiting in outcome.waiting:
        job, decided = waiting.job, wait_decision(waiting, explain(waiting), fm)
        found.append(
            JobAtInstant(
                job.id, decided.state.value, job.num_gpus, job.submitted_at, None, (), decided.reason,
                decided.reserved_start, decided.reserved_nodes,
            )
        )  # fmt: skip
    return found


def _named(
    job: TraceJob, seen: dict[str, JobAtInstant], ended: dict[str, JobRecord], rejected: dict[str, str], at: float
) -> JobAtInstant:
    """A job the user asked about: as the pass sees it, or why the pass does not see it."""
    if job.job_id in seen:
        return seen[job.job_id]
    if job.job_id in ended:
        return _ran(ended[job.job_id], "SUCCEEDED", at)
    if job.job_id in rejected:
        return _unseen(job, "REJECTED", f"can never run here: it {rejected[job.job_id]}")
    return _unseen(
        job, "NOT_SUBMITTED", f"not submitted yet: it arrives at {job.submit_s:.0f} s ({from_now(job.submit_s - at)})"
    )


def _resumed(record: JobRecord) -> JobAtInstant:
    """A job that starts at the instant because the grace period of the jobs it preempted has just ended."""
    reason = f"starts on {record.allocation_text()}: the jobs it preempted have checkpointed and stopped"
    return JobAtInstant(
        record.job_id, "STARTING", record.num_gpus, record.submit_s, record.start_s, record.allocation, reason
    )


def _walltime_end(replay: Replay, record: JobRecord) -> float | None:
    """When the scheduler expects a running segment to end: its start plus the walltime it was queued with.

    None for a job without a walltime (a hand-built `TraceJob`). Policies that plan with exact durations were
    given the run time as the walltime (`Replay.admit`), so theirs is the run's own end.
    """
    walltime = replay.by_id[record.job_id].walltime_s  # as last queued: a requeued job's remaining walltime
    return record.start_s + walltime if walltime > 0 else None


def _ran(record: JobRecord, state: str, at: float, walltime_end: float | None = None) -> JobAtInstant:
    """A job that started before the instant: still running, or done.

    A running job's end is the one the scheduler plans with, its walltime's (`walltime_end`); the trace's own
    end, which a live scheduler cannot know, follows when it comes sooner, so a reservation behind it makes sense.
    """
    where, start, end = record.allocation_text(), record.start_s, record.end_s
    if state == "RUNNING":
        ends = f"ends at {end:.0f} s"
        if walltime_end is not None and f"{walltime_end:.0f}" != f"{end:.0f}":
            ends = f"walltime ends at {walltime_end:.0f} s (the trace's run ends at {end:.0f} s)"
        reason = f"running on {where} since {start:.0f} s ({_ago(at - start)}); {ends}"
    else:
        reason = f"ran on {where} from {start:.0f} s to {end:.0f} s ({_ago(at - end)})"
    return JobAtInstant(record.job_id, state, record.num_gpus, record.submit_s, start, record.allocation, reason)


def _unseen(job: TraceJob, state: str, reason: str) -> JobAtInstant:
    return JobAtInstant(job.job_id, state, job.num_gpus, job.submit_s, None, (), reason)


def _ago(seconds: float) -> str:
    return f"{human_duration(seconds)} ago" if seconds > 0 else "just now"
