"""`jobs cancel`: a waiting job leaves the queue at once; a running gang is stopped on every node, then recorded.

A running gang gets SIGTERM on each rank's process group (a training script can checkpoint), `grace_s` to end, then
SIGKILL for what is left; its record says CANCELLED once its nodes were told. Cancelling another user's job needs
root and `--force` (DESIGN.md, Security). The whole cancel holds the scheduler lock, so a pass never relaunches a
gang half stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError, UsageError
from factoryctl.jobs.leftovers import forgive_kills, launches_of, owe_kills
from factoryctl.jobs.pass_lock import scheduling_pass
from factoryctl.jobs.rank_calls import KILL_GRACE_S, stop_gangs
from factoryctl.jobs.records import Change, write_changes
from factoryctl.model.jobs import Job, JobState
from factoryctl.store.sqlite import Store

#: Seconds a cancelled gang has between SIGTERM and SIGKILL.
CANCEL_GRACE_S = KILL_GRACE_S
#: How long stopping a running gang waits for a pass in progress (one slowed by silent nodes takes a minute or more).
CANCEL_LOCK_WAIT_S = 180.0


@dataclass(frozen=True)
class CancelReport:
    """The jobs cancelled, those already over (left as they were), and the nodes that could not be told."""

    cancelled: tuple[Job, ...]
    already_over: tuple[Job, ...]
    errors: tuple[NodeError, ...]


def check_may_cancel(jobs: Sequence[Job], user: str, force: bool, is_root: bool) -> None:
    """UsageError (nothing cancelled) when a job is someone else's and this is not root with --force."""
    others = [job for job in jobs if job.user and job.user != user]
    if others and not (is_root and force):
        first = others[0]
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        raise UsageError(
            f"job {first.id}{more} belongs to {first.user}; nothing was cancelled.",
            "cancelling someone else's job needs root and --force."
            if not is_root
            else "add --force to cancel someone else's job.",
        )


def cancel_jobs(
    config: FactoryConfig, store: Store, jobs: Sequence[Job], user: str, force: bool = False,
    why: str | None = None, grace_s: float = CANCEL_GRACE_S, waiting: Callable[[str], None] | None = None,
) -> CancelReport:  # fmt: skip
    """Cancel `jobs` (as found by `store.find_job`), each as it is now.

    A waiting job is cancelled at once, compare-and-set, without waiting for a pass that may be slow on a silent
    node; a job a pass started meanwhile, and every running gang, are stopped under the scheduler lock. A running
    gang is recorded CANCELLED before it is stopped, so a cancel cut short (Ctrl-C) never reads as a failed rank to
    requeue: the next pass kills what is left of it (its launch is no active job's any more, a stray).
    """
    check_may_cancel(jobs, user, force, os.geteuid() == 0)
    reason = f"cancelled by {user}" + (f": {why}" if why else "")
    queued = [job for job in (store.job(j.id) or j for j in jobs) if job.state.waiting]
    now = time.time()
    done = write_changes(store, [Change(job, _cancelled(job, reason, {}, now)) for job in queued], now)
    cancelled = [c.after for c in done]
    rest = [job for job in jobs if job.id not in {c.after.id for c in done}]
    errors: dict[str, NodeError] = {}
    over: list[Job] = []
    if rest:
        with scheduling_pass(config.state_dir, CANCEL_LOCK_WAIT_S, waiting):
            now_jobs = [store.job(job.id) or job for job in rest]
            over = [job for job in now_jobs if job.state.terminal]
            now = time.time()
            live = [job for job in now_jobs if not job.state.terminal]
            written = write_changes(store, [Change(job, _cancelled(job, reason, {}, now)) for job in live], now)
            cancelled += [c.after for c in written]
            gangs = [c.before for c in written if c.before.state.active and c.before.ranks]
            owe_kills(store, launches_of(gangs))  # owed first: a stop cut short (Ctrl-C) is finished by the next pass
            errors = stop_gangs(config, gangs, grace_s)  # recorded CANCELLED first: a stop cut short is no failure
            forgive_kills(store, [o for o in launches_of(gangs) if o[0] not in errors])
            told = [Change(c.after, _cancelled(c.before, reason, errors, now)) for c in written if c.before in gangs]
            write_changes(store, [t for t in told if t.after != t.before], now)
    return CancelReport(tuple(cancelled), tuple(over), tuple(errors.values()))


def _cancelled(job: Job, reason: str, errors: dict[str, NodeError], now: float) -> Job:
    unreached = sorted({r.node for r in job.ranks if r.node in errors})
    if unreached:
        reason += f"; {', '.join(unreached)} could not be told, its rank may still run"
    return job.evolve(state=JobState.CANCELLED, reason=reason, ended_at=now, stopping=None)
