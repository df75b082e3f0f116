"""The note `jobs list` and `jobs show` add when no controller runs: the job states shown may be stale.

The store's job states are what the last scheduling pass saw. With a controller, a pass runs every scheduler
interval; without one (cron's `sched tick` only), a script that ended 3 s after it started still read RUNNING
with a growing TIME until the next tick, and nothing said so. So when no live controller holds the store's lock
(`store.lock.controller_is_running`, as `jobs submit` and `telemetry collect` ask) and an active job (STARTING or
RUNNING) is shown, one stderr line says how old the states are: never in stdout (a script's JSON stays as it was),
not with -q, and nothing while a controller runs or no shown job is active.

The time of the last pass is the modification time of the scheduler lock (`jobs/pass_lock.py`), which every pass
rewrites with its pid as it begins, the controller's and `sched tick`'s alike; `jobs cancel` of a running gang
takes the same lock, so a cancel counts as a pass here (the cancelled gang's own state is fresh then).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from factoryctl.config import FactoryConfig
    from factoryctl.model.jobs import Job


def last_pass_at(state_dir: Path) -> float | None:
    """When the last scheduling pass on this state dir began (the scheduler lock's mtime); None before any."""
    from factoryctl.jobs.pass_lock import LOCK_NAME

    try:
        return (state_dir / LOCK_NAME).stat().st_mtime
    except OSError:
        return None


def stale_note(last_pass: float | None, now: float) -> str:
    """The sentence said when no controller runs while jobs are active (`last_pass`: `last_pass_at`)."""
    from factoryctl.scheduler.reasons import human_duration

    how = "no controller runs: `factoryctl sched tick` updates them"
    if last_pass is None:
        return f"job states as of no scheduling pass on this store ({how})"
    age = now - last_pass
    ago = f"{human_duration(age)} ago" if age > 0 else "just now"
    return f"job states as of the last scheduling pass, {ago} ({how})"


def say_if_stale(ctx: typer.Context, config: FactoryConfig, jobs: Iterable[Job]) -> None:
    """Write `stale_note` on stderr when a shown job is active and no controller runs; nothing with -q."""
    from factoryctl.cli import context

    if context.global_options(ctx)[1] or not any(job.state.active for job in jobs):
        return
    from factoryctl.store.lock import controller_is_running

    try:
        if controller_is_running(config.state_dir):
            return
    except OSError:  # a state dir this user cannot search: whether a controller runs is not known, so nothing said
        return
    sys.stderr.write(f"factoryctl: {stale_note(last_pass_at(config.state_dir), time.time())}.\n")
