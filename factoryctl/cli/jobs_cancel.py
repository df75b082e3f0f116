"""`factoryctl jobs cancel ID...` and `factoryctl jobs logs ID`: stopping jobs, and reading what their ranks printed.

Cancelling is all or nothing on the permission: someone else's job needs root and `--force` (DESIGN.md, Security),
and one such id in the list refuses the whole command before any job changes (exit 2; jobs/cancel.py checks it).
A waiting job is CANCELLED at once; a running gang has its ranks stopped on every node first. Logs are read from
the nodes' agents (jobs/logs.py), each line prefixed with its rank as `srun --label` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.cli.jobs import JOB_ID_ARG, complete_job_id
from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from factoryctl.config import FactoryConfig
    from factoryctl.errors import NodeError
    from factoryctl.jobs.logs import LogCursor
    from factoryctl.model.jobs import Job

#: The longest `--tail`, in lines.
MAX_TAIL_LINES = 1_000_000


def cancel_command(
    ctx: typer.Context,
    job_ids: list[str] = typer.Argument(
        ..., metavar="ID...", help="Jobs' ids, or their first characters.", autocompletion=complete_job_id
    ),
    force: bool = typer.Option(False, "--force", help="Cancel other users' jobs too (root only)."),
    reason: str | None = context.reason_option(help="Why, added to the job's reason."),
) -> None:
    """Cancel jobs: a waiting one at once, a running one once its ranks are stopped; ended ones stay as they are."""
    from factoryctl.cli.jobs import open_jobs
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
    raise typer.Exit(_reported(report.errors))


def logs_command(
    ctx: typer.Context,
    job_id: str = JOB_ID_ARG,
    rank: int | None = typer.Option(None, "--rank", min=0, help="Only this rank's lines (default: every rank's)."),
    tail: int | None = typer.Option(
        None, "--tail", min=1, max=MAX_TAIL_LINES, help="Only the last N lines of each rank."
    ),
    follow: bool = typer.Option(
        False, "--follow", help="Keep printing new lines until the job ends (exit 0) or Ctrl-C (exit 130)."
    ),
) -> None:
    """What the job's ranks printed (stdout and stderr together), each line prefixed with its rank (`0: ...`)."""
    from factoryctl.cli.jobs import find

    config = context.load(ctx)
    job = find(config, job_id)
    if not job.ranks:
        raise UsageError(
            f"job {job.id} is {job.state.value} and has never run, so it has no output.",
            f"`factoryctl jobs show {job.id}` says why.",
        )
    if rank is not None and rank not in {r.rank for r in job.ranks}:
        raise UsageError(f"job {job.id} has no rank {rank}.", f"its ranks are 0 to {len(job.ranks) - 1}.")
    raise typer.Exit(_print_logs(config, job, rank, tail, follow))


def _print_logs(config: FactoryConfig, job: Job, rank: int | None, tail: int | None, follow: bool) -> int:
    """Print the ranks' lines (and on with `follow`); the exit status of the nodes that could not be read."""
    from factoryctl.cli.render import emit
    from factoryctl.jobs.logs import cursors_for, labelled, read_more

    cursors = cursors_for(job, rank)
    errors = read_more(config, job, cursors, tail)
    for line in labelled(cursors, final=not follow):
        emit(line + "\n")
    if follow:
        errors = _follow(config, job, cursors)
    return _reported([_said_of(job, e) for e in errors])


def _said_of(job: Job, error: NodeError) -> NodeError:
    """A node's `job J has no rank R on this node` said of the job the user named, not of its launch's own id.

    The agent knows a launch (`<id>.<start>`, jobs/rank_env.py), the user the job: the rank never started there.
    """
    import re

    from factoryctl.errors import NodeError

    never = re.fullmatch(r"job \S+ has no rank (\d+) on this node", error.message) if error.kind == "usage" else None
    if never is None:
        return error
    said = NodeError(
        error.node,
        "usage",
        f"rank {never[1]} of job {job.id} has no output here: it never started on this node.",
        f"`factoryctl jobs show {job.id}` says how its launch went.",
    )
    said.exit_code = error.exit_code
    return said


def _say_waiting(owner: str) -> None:
    """Said once when a running gang's cancel waits for a scheduling pass in progress."""
    import sys

    sys.stderr.write(f"factoryctl: waiting for the scheduling pass in progress (pid {owner}) to stop its gang...\n")


def _follow(config: FactoryConfig, job: Job, cursors: list[LogCursor]) -> list[NodeError]:
    """`--follow`: new lines as they come, until the job is over; the last pass's node errors."""
    from factoryctl.cli.jobs import open_jobs
    from factoryctl.cli.render import emit, pause_while_read
    from factoryctl.jobs.logs import follow

    def job_now() -> Job:
        store = open_jobs(config)
        if store is None:
            return job
        try:
            return store.job(job.id) or job
        finally:
            store.close()

    def wait(seconds: float) -> bool:
        pause_while_read(seconds)
        return False

    def restarted(again: Job) -> None:
        import sys

        sys.stderr.write(f"factoryctl: job {again.id} was requeued and started again (restart {again.restarts}).\n")

    def silent(errors: list[NodeError]) -> None:
        import sys

        for error in errors:
            sys.stderr.write(f"factoryctl: {error.said()} (still following)\n")

    return follow(config, job_now, cursors, lambda line: emit(line + "\n"), wait, restarted, silent, job)


def _reported(errors: Sequence[NodeError]) -> int:
    """The nodes that could not be reached, said on stderr as every command says them; the exit status they make."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors
    from factoryctl.errors import most_severe

    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in errors]))


def _say(text: str) -> None:
    import sys

    sys.stderr.write(f"factoryctl: {text}\n")


def register(app: typer.Typer) -> None:
    """Add `cancel` and `logs` to the `jobs` noun."""
    app.command("cancel", short_help="Cancel jobs; others' jobs need root and --force.")(cancel_command)
    app.command("logs", short_help="What the job's ranks printed, each line prefixed with its rank.")(logs_command)
