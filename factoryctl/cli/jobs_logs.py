"""`factoryctl jobs logs ID`: what a job's ranks printed, read from their nodes, each line prefixed with its rank.

As `srun --label` labels them (`0: ...`); `--tail` reads only each rank's last lines, `--follow` keeps reading until
the job ends, across a restart (jobs/logs.py reads the nodes' agents).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.cli.jobs import JOB_ID_ARG
from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.errors import NodeError
    from factoryctl.jobs.logs import LogCursor
    from factoryctl.model.jobs import Job

#: The longest `--tail`, in lines.
MAX_TAIL_LINES = 1_000_000


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
        last = job.last_launch()
        if last is None or not job.state.waiting:
            raise UsageError(_no_output(job), f"`factoryctl jobs show {job.id}` says why.")
        _say_last_run(job, follow)
        job = last  # its last run's lines (kept on its nodes), then with --follow the run that starts next
    if rank is not None and rank not in {r.rank for r in job.ranks}:
        raise UsageError(f"job {job.id} has no rank {rank}.", f"its ranks are 0 to {len(job.ranks) - 1}.")
    raise typer.Exit(_print_logs(config, job, rank, tail, follow))


def _say_last_run(job: Job, follow: bool) -> None:
    """Say on stderr that the lines are those of the requeued job's last run (and, following, that more may come)."""
    import sys

    after = "; the next run's follow when it starts" if follow else ""
    sys.stderr.write(
        f"factoryctl: job {job.id} is {job.state.value} again ({job.reason}): its last run's output{after}.\n"
    )


def _no_output(job: Job) -> str:
    """Why a job without ranks has no output: it never ran, or it was requeued (a failure, a preemption)."""
    from factoryctl.jobs.preempting import PREEMPTED

    if job.restarts or job.reason.startswith(PREEMPTED):
        return f"job {job.id} is {job.state.value} again (requeued), so it has no output until it starts again."
    return f"job {job.id} is {job.state.value} and has never run, so it has no output."


def _print_logs(config: FactoryConfig, job: Job, rank: int | None, tail: int | None, follow: bool) -> int:
    """Print the ranks' lines (and on with `follow`); the exit status of the nodes that could not be read."""
    from factoryctl.cli.jobs import unreached_status
    from factoryctl.cli.render import emit
    from factoryctl.jobs.logs import cursors_for, labelled, read_more

    cursors = cursors_for(job, rank)
    errors = read_more(config, job, cursors, tail)
    for line in labelled(cursors, final=not follow):
        emit(line + "\n")
    if follow:
        errors = _follow(config, job, cursors)
    return unreached_status([_said_of(job, e) for e in errors])


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

        # its restart count, as the ranks see it: a failure adds one, a preemption none (`restart 0` read as a failure)
        sys.stderr.write(
            f"factoryctl: job {again.id} was requeued and started again (FACTORY_RESTART_COUNT={again.restarts}).\n"
        )

    def silent(errors: list[NodeError]) -> None:
        import sys

        for error in errors:
            sys.stderr.write(f"factoryctl: {error.said()} (still following)\n")

    return follow(config, job_now, cursors, lambda line: emit(line + "\n"), wait, restarted, silent, job)


def register(app: typer.Typer) -> None:
    """Add `logs` to the `jobs` noun."""
    app.command("logs", short_help="What the job's ranks printed, each line prefixed with its rank.")(logs_command)
