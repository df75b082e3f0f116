"""`factoryctl jobs`: the gang scheduler's queue, read from the store: `list` (also plain `jobs`) and `show`.

`submit` is jobs_submit.py's, `cancel` jobs_cancel.py's, `logs` jobs_logs.py's. Nothing here starts a job: the controller, or
`factoryctl sched tick` from cron, runs the scheduler over the queue (docs/jobs.md). The rows are read from the
store only, so listing a queue of thousands asks no node. Heavy imports (the store, the model) wait for the command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from factoryctl.cli import context
from factoryctl.cli.completion import complete_choice_list
from factoryctl.cli.options import (
    DOCUMENT_OUTPUT_OPTION,
    INTERVAL_OPTION,
    NO_HEADER_OPTION,
    OUTPUT_OPTION,
    WATCH_OPTION,
    checked_choice,
)
from factoryctl.cli.render import Column, OutputFormat
from factoryctl.model.timefmt import squeue_clock

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from collections.abc import Set as AbstractSet

    from typer._click import Context as ClickContext

    from factoryctl.config import FactoryConfig
    from factoryctl.errors import NodeError
    from factoryctl.model.jobs import Job, JobState
    from factoryctl.store.sqlite import Store

#: The states a job goes through (model/jobs.py JobState), as `--state` takes them.
STATES = ("PENDING", "DEFERRED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
#: How long an ended job stays in the default listing (`--all` lists every one).
RECENT_S = 3600.0


class JobsGroup(TyperGroup):
    """The `jobs` noun: options before any verb (`jobs --all`, `jobs -o json`) are `jobs list`'s."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """`jobs [OPTIONS]` -> `jobs list [OPTIONS]`; a verb, a mistyped one, and `--help` stay as they are."""
        if args and args[0].startswith("-") and not {"-h", "--help"} & set(args):
            args = ["list", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=JobsGroup,
    no_args_is_help=False,
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
    epilog="`factoryctl jobs [OPTIONS]` is `factoryctl jobs list [OPTIONS]`: its options are in "
    "`factoryctl jobs list --help`.",
)

JOB_COLUMNS = (
    Column("id", "ID"),
    Column("name", "NAME"),
    Column("user", "USER"),
    Column("state", "STATE"),
    Column("gpus", "GPUS"),
    Column("nodes", "NODES"),
    Column("time", "TIME"),
    Column("reason", "REASON"),
    Column("submitted", "SUBMITTED", wide_only=True),
    Column("started", "STARTED", wide_only=True),
    Column("ended", "ENDED", wide_only=True),
    Column("restarts", "RESTARTS", wide_only=True),
    Column("priority", "PRIORITY", wide_only=True),
)


def job_nodes(job: Job) -> str | None:
    """The nodes a job holds or held, folded (`n[01-04]`); None before it was placed."""
    from factoryctl.model.folding import fold

    return fold(list(job.nodes)) if job.nodes else None


def job_row(job: Job, now: float) -> dict[str, Any]:
    """One table row of `jobs list` (JSON, YAML and CSV print `Job.as_json` instead)."""
    from factoryctl.cli.render import iso_utc

    elapsed = job.elapsed(now)
    return {
        "id": job.id,
        "name": job.name,
        "user": job.user,
        "state": job.state.value,
        "gpus": job.num_gpus,
        "nodes": job_nodes(job),
        "time": squeue_clock(elapsed) if elapsed is not None else None,
        "reason": job.reason or None,
        "submitted": iso_utc(job.submitted_at),
        "started": iso_utc(job.started_at) if job.started_at is not None else None,
        "ended": iso_utc(job.ended_at) if job.ended_at is not None else None,
        "restarts": job.restarts,
        "priority": job.spec.priority,
    }


def open_jobs(config: FactoryConfig, write: bool = False) -> Store | None:
    """The store holding the queue; None when there is none yet and `write` is false (no job was ever submitted)."""
    from factoryctl.store.sqlite import Store

    if not write and not config.store_path.exists():
        return None
    return Store(config.store_path, readonly=not write)


def find(config: FactoryConfig, text: str) -> Job:
    """The job `text` names (its id or a unique prefix); a usage error when none or several do."""
    store = open_jobs(config)
    if store is None:
        from factoryctl.errors import UsageError

        raise UsageError(
            f"no job matches {text!r}: no job was ever submitted here.", "see `factoryctl jobs submit --help`."
        )
    try:
        return store.find_job(text)
    finally:
        store.close()


def check_states(given: Iterable[str]) -> tuple[str, ...]:
    """The `--state` values (comma lists, repeatable; any case) as JobState values, each once; a usage error else."""
    names = [name.strip() for value in given for name in value.split(",") if name.strip()]
    lowered = [s.lower() for s in STATES]
    return tuple(dict.fromkeys(checked_choice(name, lowered, "job state").upper() for name in names))


def listed_jobs(
    store: Store | None,
    states: Sequence[str],
    every: bool,
    user: str | None,
    now: float,
    nodes: AbstractSet[str] | None = None,
) -> list[Job]:
    """The jobs `jobs list` shows, in submit order; only `user`'s when given, only those on `nodes` when given.

    A job is on a node when it holds or held GPUs there (its NODES, `Job.nodes`, or its last run's when it was
    requeued), as `squeue -w` lists a node's jobs.

    `states` when given, else every job with `every`, else the waiting and active ones and those that ended in the
    last RECENT_S.
    """
    from factoryctl.model.jobs import JobState

    if store is None:
        return []
    wanted: set[JobState] | None = {JobState(s) for s in states} if states else None
    if wanted is None and not every:  # the queue, the running, and what ended lately: not a month of ended jobs
        from factoryctl.store.job_board import jobs_ended
        from factoryctl.store.rows import to_ms

        recent = [j for j in jobs_ended(store, now - RECENT_S, 1_000_000) if (j.ended_at or now) >= now - RECENT_S]
        live = store.jobs({s for s in JobState if not s.terminal})
        jobs = sorted([*live, *recent], key=lambda j: (to_ms(j.submitted_at), j.id))  # the store's own order
    else:
        jobs = store.jobs(wanted)
    return [j for j in jobs if (user is None or j.user == user) and (nodes is None or not nodes.isdisjoint(_ran_on(j)))]


def _ran_on(job: Job) -> set[str]:
    """The nodes a job holds or held GPUs on: its NODES, and for a job requeued, those of its last run too."""
    last = job.last_launch()
    return {*job.nodes, *(rank.node for rank in (last.ranks if last is not None else ()))}


def _list(
    ctx: typer.Context,
    states: list[str],
    every: bool,
    user: str | None,
    output: OutputFormat,
    no_header: bool,
    watch: bool = False,
    interval: float = 2.0,
    node: str | None = None,
) -> None:
    from factoryctl.cli.jobs_stale import say_if_stale
    from factoryctl.cli.listing import show_listing

    wanted = check_states(states)
    config = context.load(ctx)
    nodes = None if node is None else frozenset(spec.name for spec in config.resolve_target(node))
    shown: list[Job] = []

    def produce() -> tuple[list[dict[str, Any]], list[Any]]:
        now = time.time()
        store = open_jobs(config)
        try:
            shown[:] = listed_jobs(store, wanted, every, user, now, nodes)
        finally:
            if store is not None:
                store.close()
        if output in (OutputFormat.table, OutputFormat.wide):
            return [job_row(j, now) for j in shown], []
        return [j.as_json() for j in shown], []

    status = show_listing(produce, JOB_COLUMNS, output, no_header, watch, interval, job_fields())
    if not watch:  # a redrawn screen has no line to keep it on
        say_if_stale(ctx, config, shown)
        _say_if_no_store(ctx, config)
    raise typer.Exit(status)


def _say_if_no_store(ctx: typer.Context, config: FactoryConfig) -> None:
    """Before any job was submitted there is no store: the empty listing says so, as every store query does."""
    from factoryctl.cli.nothing_stored import note_no_store, store_missing

    if store_missing(config):
        note_no_store(ctx, config, "no job", "`factoryctl jobs submit` creates it")


def job_fields() -> list[str]:
    """The keys of a job item (`Job.as_json`), read off a blank job: the CSV header when none is listed."""
    from factoryctl.model.jobs import Job, JobSpec

    return list(Job("", JobSpec(1), 0.0).as_json())


STATE_OPTION = typer.Option(
    [],
    "--state",
    metavar="<state>",
    show_default=False,
    help="Only jobs in these states, comma-separated (pending,running); repeat to add more; any age.",
    autocompletion=complete_choice_list([s.lower() for s in STATES]),
)
ALL_OPTION = typer.Option(False, "--all", help="Every job, also those that ended more than an hour ago.")
USER_OPTION = typer.Option(None, "--user", help="Only the jobs this user submitted.")
NODE_OPTION = typer.Option(
    None,
    "--node",
    metavar="TARGET",
    help="Only the jobs holding or that held GPUs on these nodes: node set, @group or all.",
    autocompletion=context.complete_target,
)


@app.callback()
def jobs_default(ctx: typer.Context) -> None:
    """Submit, list, show, cancel jobs and read their logs (`factoryctl jobs` lists them)."""
    if ctx.invoked_subcommand is None:
        _list(ctx, [], False, None, OutputFormat.table, False)


@app.command("list", short_help="One row per job: waiting, running, and ended in the last hour.")
def list_command(
    ctx: typer.Context,
    state: list[str] = STATE_OPTION,
    every: bool = ALL_OPTION,
    user: str | None = USER_OPTION,
    node: str | None = NODE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    watch: bool = WATCH_OPTION,
    interval: float = INTERVAL_OPTION,
) -> None:
    """One row per job, oldest first: the waiting and running ones, and those that ended in the last hour."""
    _list(ctx, state, every, user, output, no_header, watch, interval, node)


def complete_job_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """The ids of the store's jobs starting with `incomplete`, newest first, for `show`, `cancel` and `logs`.

    factory.yaml is read as TARGET completion reads it (no pipe, the quick loader of completion_inventory.py) for
    its store; any problem offers nothing. `cancel` is offered the jobs not ended yet only.
    """
    from factoryctl.cli.completion_inventory import completion_config
    from factoryctl.config import read_config_source
    from factoryctl.errors import FactoryError

    explicit = ctx.find_root().params.get("config")
    try:
        path, text = read_config_source(Path(explicit) if explicit else None, pipes=False)
        config = completion_config(text, path)
        store = open_jobs(config)
        if store is None:
            return []
        try:
            jobs = store.jobs()
        finally:
            store.close()
    except (FactoryError, OSError):
        return []
    unended = ctx.info_name == "cancel"
    return [j.id for j in reversed(jobs) if j.id.startswith(incomplete) and not (unended and j.state.terminal)]


#: The ID of `show` and `logs`: a job's id or a unique prefix, completed from the store.
JOB_ID_ARG = typer.Argument(
    ..., metavar="ID", help="The job's id, or its first characters.", autocompletion=complete_job_id
)


@app.command("show", short_help="One job in full: its command, placement and ranks.")
def show_command(
    ctx: typer.Context,
    job_id: str = JOB_ID_ARG,
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
) -> None:
    """One job in full: what it runs, where, its ranks and why it is in its state (-o json: the job object)."""
    from factoryctl.cli.jobs_stale import say_if_stale
    from factoryctl.cli.render import emit_document

    config = context.load(ctx)
    job = with_accounting(config, find(config, job_id), time.time())
    emit_document(job.as_json(), output, lambda _: job_text(job, time.time()))
    say_if_stale(ctx, config, [job])


def with_accounting(config: FactoryConfig, job: Job, now: float) -> Job:
    """The job with its energy and cost so far from the store's telemetry (jobs/accounting.py), when known."""
    from factoryctl.jobs.accounting import with_energy
    from factoryctl.power.configured_prices import price_intervals

    if job.started_at is None:
        return job
    store = open_jobs(config)
    if store is None:
        return job
    try:
        return with_energy(store, job, now, price_intervals(config))
    finally:
        store.close()


def job_text(job: Job, now: float) -> str:
    """`jobs show`'s table form: `key: value` lines, then one line per rank."""
    import shlex

    from factoryctl.cli.render import iso_utc

    spec = job.spec
    elapsed = job.elapsed(now)
    pairs = [
        ("id", job.id),
        ("name", job.name),
        ("user", job.user),
        ("state", job.state.value),
        ("reason", job.reason or "-"),
        ("command", shlex.join(spec.command)),
        ("directory", spec.cwd or "(the node user's home)"),
        ("gpus", f"{spec.num_gpus}" + (f" ({spec.gpus_per_node} per node)" if spec.gpus_per_node else "")),
        ("nodes", job_nodes(job) or "-"),
        ("time", squeue_clock(elapsed) if elapsed is not None else "-"),
        ("priority", str(spec.priority)),
        ("walltime", squeue_clock(spec.walltime_s) if spec.walltime_s is not None else "the scheduler's default"),
        ("restarts", str(job.restarts)),
        ("submitted", iso_utc(job.submitted_at)),
        ("started", iso_utc(job.started_at) if job.started_at is not None else "-"),
        ("ended", iso_utc(job.ended_at) if job.ended_at is not None else "-"),
        ("energy", f"{job.energy_kwh:.3f} kWh" if job.energy_kwh is not None else "-"),
        ("cost", f"{job.cost:.2f}" if job.cost is not None else "-"),
    ]
    pairs += _asked_pairs(job)
    width = max(len(key) for key, _ in pairs) + 2
    lines = [f"{key + ':':<{width}}{value}" for key, value in pairs]
    lines += _rank_lines(job)
    return "".join(_safe(line) + "\n" for line in lines)


def _asked_pairs(job: Job) -> list[tuple[str, str]]:
    """The lines for what was asked only when it was: allowed nodes, labels, environment, deferral."""
    from factoryctl.cli.render import iso_utc
    from factoryctl.model.folding import fold

    spec = job.spec
    pairs = []
    if spec.nodes:
        pairs.append(("allowed nodes", fold(list(spec.nodes))))
    if spec.labels:
        pairs.append(("labels", " ".join(f"{k}={v}" for k, v in spec.labels)))
    if spec.env:
        pairs.append(("environment", " ".join(f"{k}={v}" for k, v in spec.env)))
    if spec.deferrable:
        price = "any price" if spec.max_price is None else f"up to {spec.max_price:g} per MWh"
        deadline = "no deadline" if spec.deadline is None else f"done by {iso_utc(spec.deadline)}"
        pairs.append(("deferrable", f"{price}, {deadline}"))
    if job.stopping is not None:
        pairs.append(("stopping", f"for job {job.stopping.for_job} at {iso_utc(job.stopping.stops_at)}"))
    return pairs


#: A started rank of an ended gang with no exit status: the pass (a peer's failure, a walltime) or a cancel stopped
#: it after the gang's end was recorded, and the store is not told how it ended (its node's `ranks` op knows).
STOPPED_WITH_GANG = "stopped with its gang"


def _rank_lines(job: Job) -> list[str]:
    """`ranks:` then one line per rank: its node, GPUs, pid and how it ended."""
    if not job.ranks:
        return []
    from factoryctl.cli.jobs_rank_endings import ending_text
    from factoryctl.model.folding import fold_indexes

    lines = ["ranks:"]
    for rank in job.ranks:
        gpus = fold_indexes(rank.gpus) if rank.gpus else "-"
        ended = "running" if rank.exit_code is None else ending_text(rank.exit_code)
        if rank.exit_code is None and rank.pid is None:
            ended = "-"  # never started
        elif rank.exit_code is None and job.state.terminal:
            # the rank the reason names (lost with its node, ended with no status) was not stopped by the gang's end
            named = f"rank {rank.rank} on {rank.node} " in job.reason
            ended = "no exit status (see reason)" if named else STOPPED_WITH_GANG
        pid = rank.pid if rank.pid is not None else "-"
        lines.append(f"  {rank.rank}: {rank.node}  gpus {gpus}  pid {pid}  {ended}")
    return lines


def _safe(line: str) -> str:
    from factoryctl.model.telemetry import escape_controls

    return escape_controls(line)


def unreached_status(errors: Sequence[NodeError]) -> int:
    """The nodes that could not be reached, said on stderr as every command says them; the exit status they make."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors
    from factoryctl.errors import most_severe

    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in errors]))
