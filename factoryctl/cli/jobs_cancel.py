"""`factoryctl jobs cancel ID...`: stopping jobs (`jobs logs` is jobs_logs.py's).

Cancelling is all or nothing on the permission: someone else's job needs root and `--force` (DESIGN.md, Security),
and one such id in the list refuses the whole command before any job changes (exit 2; jobs/cancel.py checks it).
A waiting job is CANCELLED at once; a running gang is recorded CANCELLED, then its ranks are stopped on every node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.cli.jobs import complete_job_id

if TYPE_CHECKING:
    pass


def cancel_command(
    ctx: typer.Context,
    job_ids: list[str] = typer.Argument(
        ..., metavar="ID...", help="Jobs' ids, or their first characters.", autocompletion=complete_job_id
    ),
    force: bool = typer.Option(False, "--force", help="Cancel other users' jobs too (root only)."),
    reason: str | None = context.reason_option(help="Why, added to the job's reason."),
) -> None:
    """Cancel jobs: a waiting one at once, a running one once its ranks are stopped; ended ones stay as they are."""
    from factoryctl.cli.jobs import open_jobs, unreached_status
    from factoryctl.cli.jobs_submit import effective_user
    from factoryctl.cli.render import emit
    from factoryctl.jobs.cancel import cancel_jobs

    config = context.load(ctx)
    store = open_jobs(config, write=True)
    assert store is not None
    try:
        jobs = list({job.id: job for job in map(store.find_job, job_ids)}.values())  # each once, in the order given
        report = cancel_jobs(config, store, jobs, effective_user(), force, why=reason or None, waiting=_say_waiting)
    finally:
        store.close()
    emit("".join(f"cancelled {job.id}\n" for job in report.cancelled))
    quiet = context.global_options(ctx)[1]
    for job in report.already_over:
        if not quiet:
            _say(f"{job.id} had already ended ({job.state.value}): nothing to cancel.")
    raise typer.Exit(unreached_status(report.errors))


def _say_waiting(owner: str) -> None:
    """Said once when a running gang's cancel waits for a scheduling pass in progress."""
    import sys

    sys.stderr.write(f"factoryctl: waiting for the scheduling pass in progress (pid {owner}) to stop its gang...\n")


def _say(text: str) -> None:
    import sys

    sys.stderr.write(f"factoryctl: {text}\n")


def register(app: typer.Typer) -> None:
    """Add `cancel` to the `jobs` noun."""
    app.command("cancel", short_help="Cancel jobs; others' jobs need root and --force.")(cancel_command)
