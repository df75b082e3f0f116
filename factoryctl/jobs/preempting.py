"""Carrying out the scheduler's preemptions, much as Slurm's `PreemptMode=REQUEUE` with a `GraceTime` does.

`scheduler.decide.schedule` proposes a `PreemptDecision` per running job to stop for a higher-priority one that does
not fit (`scheduler.preemption`). The pass that gets one records the stop on the victim (`Job.stopping`, so the next
passes' scheduler waits for it and never proposes it again) and sends SIGTERM to every rank's process group: the
job checkpoints into FACTORY_CHECKPOINT_DIR. No pass waits out the grace (`scheduler.preemption_grace`): later
passes check the victim as any running gang (`reconcile`, through `verdicts.judge_stopping`), and requeue it once
its ranks' process groups all ended or its grace passed (SIGKILL to every group then; a silent node is owed it,
`leftovers`, and holds the requeue until it is told or lost). A TERM a node did not take is owed too
(`OWED_TERMS_KEY`, written before the stop) and sent when it answers within the grace. However a rank ends after
the TERM (non-zero, or 0 with its checkpoint saved) is the stop at work, not a failure: the requeue counts no
restart against `scheduler.max_restarts` and FACTORY_RESTART_COUNT stays as it was (it counts failures). The job it
was stopped for keeps its claim meanwhile (the scheduler's memory, `store.scheduler_memory`) and starts through the
usual path once the GPUs are free.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from factoryctl.config import FactoryConfig
from factoryctl.jobs.leftovers import PassNotes, forgive_kills, kill_launches, launches_of, owe_kills, owed_kills
from factoryctl.jobs.rank_env import launch_id
from factoryctl.jobs.records import Change, write_changes
from factoryctl.jobs.verdicts import duration_text
from factoryctl.model.jobs import Job
from factoryctl.scheduler.decide import PreemptDecision
from factoryctl.store.jobs import OWED_TERMS_KEY
from factoryctl.store.sqlite import Store

#: How the reason of a job requeued by a preemption starts, kept while it waits (`waiting_reason`).
PREEMPTED = "preempted for job "


def begin_stops(
    config: FactoryConfig,
    store: Store,
    jobs: Sequence[Job],
    preemptions: Sequence[PreemptDecision],
    now: float,
    notes: PassNotes,
) -> list[Change]:
    """Record each victim's stop (compare-and-set, a `job_preempting` event) and send its ranks SIGTERM.

    A node that does not take the TERM is not waited for: it is noted (`notes.unsignalled`, said by `sched tick`
    and the controller's log; held out of placements as any silent node), and at the end of the grace the victim
    is killed and requeued, that node owed the SIGKILL.
    """
    by_id = {job.id: job for job in jobs}
    marks = []
    for decision in preemptions:
        victim = by_id.get(decision.job_id)
        if victim is None or not victim.state.active or victim.stopping is not None:
            continue
        stop = decision.stop_request(now)
        claimer = by_id.get(decision.for_job)
        priority = f" (priority {claimer.spec.priority})" if claimer is not None else ""
        reason = (
            f"stopping: {PREEMPTED}{decision.for_job}{priority}; SIGTERM sent, SIGKILL after its"
            f" {duration_text(stop.grace_s)} grace"
        )
        marks.append(Change(victim, victim.evolve(stopping=stop, reason=reason), event="job_preempting"))
    planned = launches_of([c.after for c in marks])
    owe_kills(store, planned, OWED_TERMS_KEY)  # before the stop: a pass killed midway leaves them to the next
    written = write_changes(store, marks, now)
    launches = launches_of([c.after for c in written])
    failed = kill_launches(config, launches, "TERM")
    notes.silent.update(failed)
    notes.unsignalled += [(node, launch) for node, launch in launches if node in failed]
    forgive_kills(store, [o for o in planned if o not in notes.unsignalled], OWED_TERMS_KEY)
    return written


def settle_terms(config: FactoryConfig, store: Store, jobs: Sequence[Job], up: Collection[str], now: float) -> None:
    """Send the owed SIGTERMs (`begin_stops`) to the nodes that answer again, while their job's grace lasts.

    A TERM owed to a job no longer stopping (requeued, cancelled, its grace over: the SIGKILL is its stop now) or to
    a stop never recorded (a pass killed between the two writes) is forgotten.
    """
    owed = owed_kills(store, OWED_TERMS_KEY)
    if not owed:
        return
    stopping = {launch_id(j) for j in jobs if j.stopping is not None and now < j.stopping.stops_at}
    kept = [o for o in owed if o[1] in stopping and o[0] in config.nodes]
    due = [o for o in kept if o[0] in up]
    failed = kill_launches(config, due, "TERM") if due else {}
    made = {o for o in due if o[0] not in failed}
    if len(made) or len(kept) != len(owed):
        store.set_scheduler_value(OWED_TERMS_KEY, [o for o in kept if o not in made])


def preempted(job: Job, why: str) -> Job:
    """A stopped victim back in the queue: no GPUs nor ranks, its restart count as it was (no failure of its own)."""
    stop = job.stopping
    for_job = stop.for_job if stop is not None else "?"
    return job.requeued(f"{PREEMPTED}{for_job}; requeued: {why}", restarts=job.restarts)


def waiting_reason(previous: str, reason: str) -> str:
    """A waiting job's reason: the scheduler's, after what requeued it when a preemption did (`preempted for job X`).

    The same text pass after pass (the head is kept as it was), so a job's record is not rewritten for nothing.
    """
    if not previous.startswith(PREEMPTED):
        return reason
    return f"{previous.split('; ', 1)[0]}; {reason}"
