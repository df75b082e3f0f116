"""One scheduling pass over the store's queue: what `sched tick` runs once and the controller on a timer.

In order, under the store's scheduler lock (`pass_lock`): kills owed to nodes up again are made (`leftovers`),
running gangs are brought up to date with their nodes (`reconcile`, which sweeps each node of strays first), the pure
scheduler decides on the queue (`scheduler.decide.schedule`, with its memory of the last pass) over the nodes not
held out as silent (`silent`), waiting jobs get its reasons, the running jobs it preempts are told to stop
(`preempting`: later passes requeue them), and the gangs it starts are launched (`launch`). Every
change is written compare-and-set (`records`), so a `jobs cancel` during the pass wins; kills the pass could not
make are owed as soon as it knows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from factoryctl.config import FactoryConfig
from factoryctl.config_schema import parse_duration
from factoryctl.jobs.cluster import Cluster, cluster_view
from factoryctl.jobs.launch import launch_gangs, starting
from factoryctl.jobs.leftovers import PassNotes, owe_kills, settle_kills
from factoryctl.jobs.pass_lock import scheduling_pass
from factoryctl.jobs.preempting import begin_stops, settle_terms, waiting_reason
from factoryctl.jobs.rank_env import busy_gpus, choose_gpus, launch_id, master_port, ports_taken
from factoryctl.jobs.reconcile import reconcile
from factoryctl.jobs.records import Change, write_changes
from factoryctl.jobs.silent import held_down, remember_silent, silent_nodes
from factoryctl.model.jobs import Job, JobState
from factoryctl.scheduler.decide import Decisions, StartDecision, schedule
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.store.sqlite import Store

#: The states a pass reads: the queue and the gangs holding GPUs.
LIVE_STATES = (JobState.PENDING, JobState.DEFERRED, JobState.STARTING, JobState.RUNNING)


@dataclass(frozen=True)
class TickReport:
    """What one pass did: every change written (started, ended, requeued, reasons), and what it could not see."""

    changes: tuple[Change, ...]
    waiting: int
    unknown_nodes: tuple[str, ...] = ()
    #: (node, launch) of each running rank no active job held, killed by this pass (`leftovers.sweep_strays`).
    strays: tuple[tuple[str, str], ...] = ()
    #: (node, launch) of each preempted rank whose node did not take its SIGTERM: SIGKILLed at the grace's end.
    unsignalled: tuple[tuple[str, str], ...] = ()


def scheduler_config(config: FactoryConfig) -> SchedulerConfig:
    """The default policy with factory.yaml's default walltime, preemption and its grace (`scheduler:`)."""
    settings = config.settings.scheduler
    return replace(
        POLICIES["default"],
        default_walltime_s=config.default_walltime_s(),
        preemption=settings.preemption,
        grace_s=parse_duration(settings.preemption_grace),
    )


def run_tick(
    config: FactoryConfig, store: Store, now: float | None = None, price: float | None = None,
    max_restarts: int | None = None,
) -> TickReport:  # fmt: skip
    """One pass: reconcile, schedule, launch. `price` (per MWh, None: unknown) is what deferrable jobs wait on.

    `max_restarts` defaults to factory.yaml's `scheduler.max_restarts`.
    """
    if max_restarts is None:
        max_restarts = config.settings.scheduler.max_restarts
    with scheduling_pass(config.state_dir):
        now = time.time() if now is None else now
        sched = scheduler_config(config)
        jobs = store.jobs(states=LIVE_STATES)
        notes = PassNotes(active_launches=frozenset(launch_id(j) for j in jobs if j.state.active))
        held_out = silent_nodes(store, now)
        stored = store.node_health()  # read once: the cluster view below reads it too
        states = [state for state, _ in stored]
        up = {s.node for s in states if s.state != "down" and s.node not in held_out}
        settle_kills(config, store, up)
        settle_terms(config, store, jobs, up, now)
        down_since = {s.node: s.since for s in states if s.state == "down"}
        checked = reconcile(config, jobs, now, lambda j: _walltime(j, sched), max_restarts, notes, down_since)
        reconciled = write_changes(store, checked, now)
        owe_kills(store, notes.owed)  # at once: a pass killed later must not forget them
        jobs = _after(jobs, reconciled)
        cluster = held_down(cluster_view(config, store, stored), held_out | notes.silent)
        protected, claimer = store.scheduler_memory()
        decisions = schedule(cluster.nodes, jobs, now, sched, price, protected, claimer)
        waits = write_changes(store, _wait_changes(jobs, decisions), now)
        stops = begin_stops(config, store, jobs, decisions.preemptions, now, notes)
        notes.owed.clear()
        started = _start(config, store, jobs, cluster, decisions.starts, now, notes)
        owe_kills(store, notes.owed)
        remember_silent(store, notes.silent, now)
        if (decisions.protected, decisions.claimer) != (protected, claimer):  # unchanged: no write, no commit
            store.set_scheduler_memory(decisions.protected, decisions.claimer)
        changes = tuple(reconciled + waits + stops + started)
        return TickReport(changes, len(decisions.waits), cluster.unknown, tuple(notes.strays), tuple(notes.unsignalled))


def _walltime(job: Job, sched: SchedulerConfig) -> float:
    return job.spec.walltime_s or sched.default_walltime_s


def _after(jobs: list[Job], changes: list[Change]) -> list[Job]:
    """The pass's jobs with its written changes applied, the ended ones dropped."""
    if not changes:
        return jobs  # a pass's read holds no ended job
    changed = {c.after.id: c.after for c in changes}
    return [j for j in (changed.get(job.id, job) for job in jobs) if not j.state.terminal]


def _wait_changes(jobs: list[Job], decisions: Decisions) -> list[Change]:
    by_id = {job.id: job for job in jobs}
    changes = []
    for wait in decisions.waits:
        job = by_id.get(wait.job_id)
        if job is None:
            continue
        reason = waiting_reason(job.reason, wait.reason)  # a preempted job's says so until it runs again
        if (job.state, job.reason) != (wait.state, reason):
            changes.append(Change(job, job.evolve(state=wait.state, reason=reason)))
    return changes


def _start(
    config: FactoryConfig, store: Store, jobs: list[Job], cluster: Cluster, starts: tuple[StartDecision, ...],
    now: float, notes: PassNotes,
) -> list[Change]:  # fmt: skip
    """Mark each started gang STARTING (with its GPUs), launch them all, and write how each launch went."""
    if not starts:
        return []  # the queue's GPUs and ports are not gathered for nothing
    by_id = {job.id: job for job in jobs}
    busy = busy_gpus(jobs)
    ports = ports_taken(jobs)
    marked: list[Change] = []
    for start in starts:
        job = by_id[start.job_id]
        gpus = choose_gpus(start.placement.allocation, cluster.gpu_indexes, busy)
        if gpus is None:  # the store's ranks hold GPUs the scheduler saw free (a gang still being killed)
            continue
        for a, g in zip(start.placement.allocation, gpus, strict=True):
            busy.setdefault(a.node, set()).update(g)
        taken = ports.setdefault(start.placement.allocation[0].node, set())
        port = master_port(job.id, taken)
        taken.add(port)
        marked.append(Change(job, starting(job, start.placement.allocation, gpus, now, start.reason, port)))
    marked = write_changes(store, marked, now)
    if not marked:
        return []
    started = {launch_id(c.after) for c in marked}
    notes.active_launches = frozenset(launch_id(j) for j in jobs if j.state.active) | started
    launched = write_changes(store, launch_gangs(config, [c.after for c in marked], now, notes), now)
    return [Change(c.before, next((d.after for d in launched if d.after.id == c.after.id), c.after)) for c in marked]
