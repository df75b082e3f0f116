"""Bringing the store's running jobs up to date with their ranks on the nodes, first in every pass.

Each node holding ranks is asked once (`ranks` of every job there); each gang is judged (`verdicts.judge`) and its
record moved on: RUNNING once every rank launched, SUCCEEDED when all exited 0, and when one rank failed the others
are stopped (`rank_calls.stop_gangs`: TERM, grace, KILL) and the gang is requeued together (up to `max_restarts`,
then FAILED). A gang being preempted (`Job.stopping`, `preempting`) is judged by `verdicts.judge_stopping`: its ranks
ending after their SIGTERM requeue it, no failure, and the end of its grace SIGKILLs and requeues it. A gang past
its walltime is stopped and FAILED. A node that does not answer leaves its jobs as they were, with the reason saying
so (its ranks may well be running, and only their node can tell), until the store has judged it down for
NODE_LOST_AFTER_S: then its ranks are lost and their gangs requeued.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from factoryctl.config import FactoryConfig
from factoryctl.jobs.leftovers import PassNotes, kill_launches, launches_of
from factoryctl.jobs.preempting import preempted
from factoryctl.jobs.rank_calls import ask_ranks, owed_by, stop_gangs
from factoryctl.jobs.records import Change, running_reason
from factoryctl.jobs.verdicts import Verdict, judge, judge_stopping
from factoryctl.model.jobs import Job, JobState
from factoryctl.model.timefmt import iso_utc

#: How long a node the store judges down may stay silent before its ranks are taken as lost and their gangs requeued.
NODE_LOST_AFTER_S = 300.0


def reconcile(
    config: FactoryConfig,
    jobs: Sequence[Job],
    now: float,
    walltime_of: Callable[[Job], float],
    max_restarts: int,
    notes: PassNotes,
    down_since: Mapping[str, float] | None = None,
) -> list[Change]:
    """The changes the nodes' answers make to the active jobs (gangs to kill already killed; kills owed in `notes`).

    `down_since`: when the store judged each down node down; a silent node down for NODE_LOST_AFTER_S has lost
    its rank (the gang is requeued, its rank there killed when the node answers again), as has a node no longer in
    factory.yaml.
    """
    active = [j for j in jobs if j.state.active and j.ranks]
    if not active:
        return []
    answers = ask_ranks(config, active, notes)
    lost = {
        n: f"its node has been down since {iso_utc(since)}"
        for n, since in (down_since or {}).items()
        if now - since >= NODE_LOST_AFTER_S
    }
    lost |= {
        r.node: "its node is no longer in factory.yaml" for j in active for r in j.ranks if r.node not in config.nodes
    }
    changes = []
    for job in active:
        verdict = (judge if job.stopping is None else judge_stopping)(job, answers, now, walltime_of(job), lost)
        event = "job_preempted" if verdict.outcome == "preempted" else None
        changes.append(Change(job, after_verdict(job, verdict, now, max_restarts), event))
    doomed = [c.before for c in changes if c.after.state is not c.before.state and not c.after.state.active]
    stopped = [job for job in doomed if job.stopping is not None]  # had their SIGTERM and grace: SIGKILL now
    doomed = [job for job in doomed if job.stopping is None]
    notes.owed.extend(owed_by(doomed, stop_gangs(config, doomed)))
    notes.owed.extend(owed_by(stopped, kill_launches(config, launches_of(stopped), "KILL")))
    return changes


def after_verdict(job: Job, verdict: Verdict, now: float, max_restarts: int) -> Job:
    """The job's record once its verdict is carried out.

    A job being preempted (`Job.stopping`) keeps its reason (`stopping: preempted for job ...`) while it runs on,
    and its stop is cleared once it ended.
    """
    if verdict.outcome in ("running", "unreachable") and job.stopping is not None:
        return job.evolve(ranks=verdict.ranks, state=JobState.RUNNING)
    if verdict.outcome == "running":
        if job.state is JobState.STARTING:
            return job.evolve(state=JobState.RUNNING, ranks=verdict.ranks, reason=running_reason(job))
        return job.evolve(ranks=verdict.ranks, reason=job.reason if "did not answer" not in job.reason else "")
    if verdict.outcome == "unreachable":
        return job.evolve(ranks=verdict.ranks, reason=verdict.why)
    if verdict.outcome == "preempted":
        return preempted(job, verdict.why)
    if verdict.outcome == "succeeded":
        return job.evolve(
            state=JobState.SUCCEEDED, ranks=verdict.ranks, reason=verdict.why, ended_at=verdict.ended_at, stopping=None
        )
    if verdict.outcome == "walltime":
        return job.evolve(state=JobState.FAILED, ranks=verdict.ranks, reason=verdict.why, ended_at=now, stopping=None)
    return _after_failure(job, verdict, now, max_restarts)


def _after_failure(job: Job, verdict: Verdict, now: float, max_restarts: int) -> Job:
    """A gang whose rank failed: requeued with one more restart, or FAILED once it used them all.

    A gang still STARTING had its launch cut short (the pass that launched it was killed): it is requeued without
    counting a restart, since the job itself never ran.
    """
    if job.state is JobState.STARTING:
        return job.requeued(f"its launch was interrupted ({verdict.why}); requeued", restarts=job.restarts)
    if job.restarts >= max_restarts:
        reason = f"{verdict.why}; failed after {job.restarts} restart{'s' if job.restarts != 1 else ''}"
        return job.evolve(state=JobState.FAILED, ranks=verdict.ranks, reason=reason, ended_at=verdict.ended_at or now)
    restarts = job.restarts + 1
    return job.requeued(f"{verdict.why}; requeued (restart {restarts} of {max_restarts})", restarts=restarts)
