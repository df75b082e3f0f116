"""What the scheduler would say at one instant of a trace replay: every job's state and the reason for it.

`sched simulate` reports averages; an operator comparing policies also wants to ask "why is this job still
waiting on day 3?". This replays the trace up to that time with the simulator (the same passes, so the same
state), then runs the pass at that time with explanations on, exactly as the live scheduler explains its
decisions (`decide.schedule` uses the same `describe_start` and `WaitExplainer`). Pure code: no IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factoryctl.errors import UsageError
from factoryctl.model.jobs import SchedNode
from factoryctl.scheduler.core import PassOutcome
from factoryctl.scheduler.decide import wait_decision
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import SchedulerConfig, split_gang
from factoryctl.scheduler.reasons import WaitExplainer, describe_start, human_duration
from factoryctl.scheduler.simulate import JobRecord, Rejected, Replay, drive, new_replay
from factoryctl.scheduler.trace import TraceJob


@dataclass(frozen=True)
class JobAtInstant:
    """One job as the scheduler sees it at the explained instant.

    `state` is a job state (`RUNNING`: started earlier, `STARTING`: the pass at that instant starts it, `PENDING`
    or `DEFERRED`: queued, `SUCCEEDED`: ended earlier), or `NOT_SUBMITTED` (submitted later) or `REJECTED` (larger
    than the cluster: the replay skips it). `allocation` is the GPUs it holds per node; `reserved_start_s` and
    `reserved_nodes` are set when the pass reserved a start for it.
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
) -> Explanation:
    """Replay `trace` up to `at` under `config` and explain the pass at `at`: running, starting, then queued jobs.

    Queued jobs come in the order the pass considered them (protected starving jobs first, then the policy's
    order); backfill may start later ones first. With `job_ids`, just those jobs (each once, in that order),
    whatever their state (done, submitted later, never runnable here); an id the trace lacks is a usage error.
    """
    if config.preemption:
        raise UsageError(
            "explaining a replay with preemption is not supported yet.", "explain the policy without preemption."
        )
    by_id = {job.job_id: job for job in trace}
    missing = [job_id for job_id in job_ids or () if job_id not in by_id]
    if missing:
        raise UsageError(
            f"job {missing[0]!r} is not in the trace.",
            "give --job a job_id from the trace's first column, and repeat --job for more than one.",
        )
    replay = new_replay(nodes, config)
    rejected = [refused for refused in map(replay.refusal, trace) if refused is not None]
    drive(replay, trace, until=at)
    ended = {r.job_id: r for r in replay.records if r.end_s <= at}
    last_end = max((r.end_s for r in ended.values()), default=None)
    running = [_ran(r, "RUNNING", at) for r in replay.records if r.start_s < at < r.end_s]
    starting, queued = _passes_at(replay, at)
    seen = running + starting + queued
    if job_ids is None:
        return Explanation(seen, rejected, last_end)
    by_seen = {job.job_id: job for job in seen}
    reasons = {r.job_id: r.reason for r in rejected}
    named = [_named(by_id[job_id], by_seen, ended, reasons, at) for job_id in dict.fromkeys(job_ids)]
    return Explanation(named, rejected, last_end)


def _passes_at(replay: Replay, at: float) -> tuple[list[JobAtInstant], list[JobAtInstant]]:
    """The passes the replay runs at `at`, explained: the jobs they start, and the jobs left waiting after the last.

    These are the replay's own passes (`Replay.schedule`), with explanations on. Usually one; another follows while
    a job started there ends at once (zero duration), as in `drive`.
    """
    starting: list[JobAtInstant] = []
    while True:
        outcome = replay.schedule(at, explain=True)
        starting += _starting(outcome, replay.fm, at)
        if not outcome.started or replay.next_event() > at:
            return starting, _queued(outcome, replay.fm, at)
        replay.finish_until(at)


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
        job, "NOT_SUBMITTED", f"submitted at {job.submit_s:.0f} s, {human_duration(job.submit_s - at)} after {at:.0f} s"
    )


def _ran(record: JobRecord, state: str, at: float) -> JobAtInstant:
    """A job that started before the instant: still running, or done."""
    where, start, end = record.allocation_text(), record.start_s, record.end_s
    if state == "RUNNING":
        reason = f"running on {where} since {start:.0f} s ({_ago(at - start)}); ends at {end:.0f} s"
    else:
        reason = f"ran on {where} from {start:.0f} s to {end:.0f} s ({_ago(at - end)})"
    return JobAtInstant(record.job_id, state, record.num_gpus, record.submit_s, start, record.allocation, reason)


def _unseen(job: TraceJob, state: str, reason: str) -> JobAtInstant:
    return JobAtInstant(job.job_id, state, job.num_gpus, job.submit_s, None, (), reason)


def _ago(seconds: float) -> str:
    return f"{human_duration(seconds)} ago" if seconds > 0 else "just now"
