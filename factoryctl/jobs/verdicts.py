"""What a running gang's ranks say about it: still running, done, failed, or past its walltime.

Pure: the nodes' answers to `ranks` in, a `Verdict` out; `reconcile.py` asks the nodes and acts on it. A gang is
all or nothing to the end: one rank failing (a non-zero exit, a signal, or gone without a word, e.g. its node
rebooted) fails the gang, whose other ranks are killed and which is requeued together (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from factoryctl.errors import NodeError
from factoryctl.jobs.rank_env import launch_id
from factoryctl.model.jobs import Job, Rank

Outcome = Literal["running", "succeeded", "failed", "walltime", "unreachable", "preempted"]


@dataclass(frozen=True)
class Verdict:
    """The gang's outcome, its ranks as the nodes reported them, and a sentence for `reason`."""

    outcome: Outcome
    ranks: tuple[Rank, ...]
    why: str = ""
    ended_at: float | None = None


def rank_reports(job: Job, answers: Mapping[str, Sequence[Mapping[str, Any]] | NodeError]) -> dict[int, Any]:
    """Each of the job's ranks' report, by rank number, from its own node's answer (absent: no record there)."""
    found: dict[int, Any] = {}
    key = launch_id(job)
    for r in job.ranks:
        answer = answers.get(r.node)
        if isinstance(answer, NodeError) or answer is None:
            continue
        for report in answer:
            if report.get("job") == key and report.get("rank") == r.rank:
                found[r.rank] = report
    return found


def judge(
    job: Job,
    answers: Mapping[str, Sequence[Mapping[str, Any]] | NodeError],
    now: float,
    walltime: float,
    lost: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict on an active job from its nodes' `ranks` answers (a node's answer or its error, by node).

    A rank that failed on a node that answered fails the gang even while another node is silent, and so does the
    walltime: neither waits for a node that may never answer again (the silent node's rank is killed when it can be
    told). A gang only waits on a silent node while nothing else decides its fate, and while that node is not
    `lost` (node -> why: judged down long enough that its rank is taken as gone, as a rank whose node rebooted).
    """
    reports = rank_reports(job, answers)
    ranks = tuple(_updated(r, reports.get(r.rank)) for r in job.ranks)
    silent = [r.node for r in job.ranks if isinstance(answers.get(r.node), NodeError)]
    for r in ranks:
        report = reports.get(r.rank)
        if r.node in silent:
            continue
        if report is None:
            return Verdict("failed", ranks, f"rank {r.rank} on {r.node} is gone (its node has no record of it)", now)
        if not report.get("running") and r.exit_code != 0:
            how = "ended without an exit status" if r.exit_code is None else f"exited {r.exit_code}"
            return Verdict("failed", ranks, f"rank {r.rank} on {r.node} {how}", r.ended_at or now)
    if not silent and all(r.exit_code == 0 and not reports[r.rank].get("running") for r in ranks):
        ended = max((r.ended_at for r in ranks if r.ended_at is not None), default=now)
        return Verdict("succeeded", ranks, "every rank exited 0", ended)  # however late this pass saw it
    if _ran(job, reports, now) >= walltime:
        return Verdict("walltime", ranks, f"reached its walltime of {duration_text(walltime)}", now)
    for r in ranks:
        if r.node in silent and lost and r.node in lost:
            return Verdict("failed", ranks, f"rank {r.rank} on {r.node} is lost ({lost[r.node]})", now)
    if silent:
        error = answers[silent[0]]
        assert isinstance(error, NodeError)
        return Verdict("unreachable", ranks, f"{silent[0]} did not answer: {error.message}")
    return Verdict("running", ranks)


def judge_stopping(
    job: Job,
    answers: Mapping[str, Sequence[Mapping[str, Any]] | NodeError],
    now: float,
    walltime: float,
    lost: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict on a gang being preempted (`Job.stopping`): a rank ending non-zero after its SIGTERM is no failure.

    Its ranks were sent SIGTERM, so however a rank ends from then on (143, killed by the signal, or 0 after saving
    its checkpoint) is the stop at work: the job is `preempted` (requeued, to resume) once no process of its ranks'
    groups runs any more (a `sh -c` launcher's workers still saving their checkpoint count; ranks gone or on a
    `lost` node do not), or its grace has passed with some still running (the caller SIGKILLs every group then),
    and until then `running` (or `unreachable`: its silent node's rank may still run). Only its walltime ends it
    otherwise (FAILED, as any gang). A gang that ended on its own before the pass that chose it
    was judged by that pass's reconcile first, so what ends here is the stop's doing, bar a rank ending in the
    second between that pass's reconcile and its SIGTERM (a rerun from its checkpoint): the node's exit times are
    on its own clock, never compared with this one's.
    """
    stop = job.stopping
    assert stop is not None
    verdict = judge(job, answers, now, walltime, lost)
    if verdict.outcome == "walltime":
        return verdict
    reports = rank_reports(job, answers)
    grace = duration_text(stop.grace_s)
    silent = {r.node for r in job.ranks if isinstance(answers.get(r.node), NodeError)} - set(lost or ())
    if silent:  # its rank there may still run on those GPUs: no requeue (nor a copy elsewhere) until told or lost
        return verdict if verdict.outcome == "unreachable" else Verdict("unreachable", verdict.ranks)
    if any(group_runs(reports.get(r.rank) or {}) for r in job.ranks):  # a launcher's workers still saving count
        if now >= stop.stops_at:
            return Verdict("preempted", verdict.ranks, f"killed after its {grace} grace", now)
        return Verdict("running", verdict.ranks)
    ended = max((r.ended_at for r in verdict.ranks if r.ended_at is not None), default=now)
    return Verdict("preempted", verdict.ranks, "its ranks ended after its SIGTERM", ended)


def group_runs(report: Mapping[str, Any]) -> bool:
    """Whether a rank or a process it started still runs (`group_running`; an agent before it: `running`).

    Its process group's and, from agents that mark ranks, every process carrying the rank's mark, also one that
    left the group with `setsid` (docs/agent-protocol.md).
    """
    return bool(report.get("group_running", report.get("running")))


def _ran(job: Job, reports: Mapping[int, Any], now: float) -> float:
    """How long the gang has run: its longest-running rank's time on its node's boot clock.

    No wall-clock step moves that clock; an agent without `running_s` gives none, and then the job's start on this
    machine's clock is used.
    """
    reported = [r.get("running_s") for r in reports.values()]
    measured = [t for t in reported if isinstance(t, (int, float)) and not isinstance(t, bool)]
    if measured:
        return float(max(measured))
    return now - job.started_at if job.started_at is not None else 0.0


def _updated(rank: Rank, report: Mapping[str, Any] | None) -> Rank:
    if report is None:
        return rank
    return Rank(
        rank=rank.rank,
        node=rank.node,
        pid=_int_or(report.get("pid"), rank.pid),
        exit_code=_int_or(report.get("exit_code"), None),
        gpus=rank.gpus,
        started_at=_float_or(report.get("started_at"), rank.started_at),
        ended_at=_float_or(report.get("ended_at"), None),
    )


def _int_or(value: object, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float_or(value: object, default: float | None) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def duration_text(seconds: float) -> str:
    """`2h`, `90m`, `45s`: a walltime or grace as a person wrote it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
