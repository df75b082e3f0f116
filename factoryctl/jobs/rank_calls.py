"""Asking nodes about their ranks and stopping gangs: what a pass's check, a failed gang and `jobs cancel` share.

A gang is stopped as Slurm stops a job: SIGTERM to every rank's processes (its process group, and what left it with
`setsid`, found by the rank's mark: docs/agent-protocol.md), up to KILL_GRACE_S for them all to end (a checkpoint
saved by a launcher's worker after the launcher exited), then SIGKILL to what is left, whose leader ended or not: a
child the rank started (a worker trapping TERM) lives on after its leader exits, on GPUs the scheduler gives out
again. A node that cannot be told is returned with its error: the caller owes it the kill (`leftovers`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.jobs.leftovers import Owed, PassNotes, kill_launches, launches_of, sweep_strays
from factoryctl.jobs.node_calls import on_nodes
from factoryctl.jobs.rank_env import launch_id
from factoryctl.jobs.verdicts import group_runs, rank_reports
from factoryctl.model.jobs import Job
from factoryctl.transport.session import AgentSession

#: Seconds a stopped gang's ranks have between SIGTERM and SIGKILL (Slurm's KillWait).
KILL_GRACE_S = 10.0


def ask_ranks(
    config: FactoryConfig, jobs: Sequence[Job], notes: PassNotes | None = None
) -> dict[str, Sequence[Mapping[str, Any]] | NodeError]:
    """Every node's answer to `ranks` for the given jobs' ranks there (or its error), by node.

    With `notes`, each node is swept of strays first (`leftovers.sweep_strays`) and the silent ones are noted.
    """
    by_node: dict[str, list[str]] = {}
    for job in jobs:
        for r in job.ranks:
            by_node.setdefault(r.node, []).append(launch_id(job))

    def ask(session: AgentSession, node: str) -> Sequence[Mapping[str, Any]]:
        if notes is not None:
            sweep_strays(session, node, notes)
        return session.ranks(by_node[node])

    answers = on_nodes(config, list(by_node), ask)
    if notes is not None:
        notes.silent.update(n for n, a in answers.items() if isinstance(a, NodeError))
    return answers


def stop_gangs(config: FactoryConfig, gangs: Sequence[Job], grace_s: float = KILL_GRACE_S) -> dict[str, NodeError]:
    """SIGTERM every gang, wait for their ranks' processes to end (at most `grace_s`), SIGKILL the rest.

    Returns the nodes that could not be told.
    """
    if not gangs:
        return {}
    errors = kill_launches(config, launches_of(gangs), "TERM")
    deadline = time.monotonic() + grace_s
    left = [_told(job, errors) for job in gangs]  # a node that did not take the TERM is not asked again
    left = [job for job in left if job.ranks]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        answers = ask_ranks(config, left)
        left = [job for job in left if any(group_runs(r) for r in rank_reports(job, answers).values())]
    reachable = [_told(job, errors) for job in gangs]
    return errors | kill_launches(config, launches_of([j for j in reachable if j.ranks]), "KILL")


def _told(job: Job, errors: Mapping[str, NodeError]) -> Job:
    """The job with only its ranks on nodes that took the signal (the others are owed it)."""
    return job.evolve(ranks=tuple(r for r in job.ranks if r.node not in errors))


def owed_by(gangs: Sequence[Job], errors: Mapping[str, NodeError]) -> list[Owed]:
    """The (node, launch) pairs of these gangs whose node could not be told."""
    return [o for o in launches_of(gangs) if o[0] in errors]
