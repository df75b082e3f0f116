"""`factoryctl jobs submit [OPTIONS] [--] CMD...`: put a gang job in the queue as PENDING; it starts no process.

Every check that can be made here is made before the job is written, so a job that could never run is refused at
once (exit 2) rather than waiting forever: a shape the scheduler cannot honour (JobSpec), more GPUs than the
eligible nodes have, a TARGET or label that names no node, an environment name the executor sets itself. The
submitting user is the effective user of this process (not `$USER`, which anyone can set): cancelling someone
else's job needs root (DESIGN.md, Security). The job starts when the controller or `factoryctl sched tick` runs
the scheduler (docs/jobs.md).
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.exec_args import ExecCommand
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION
from factoryctl.cli.render import OutputFormat
from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.model.jobs import Job, JobSpec
    from factoryctl.store.sqlite import Store

#: The environment the executor gives every rank (jobs/rank_env.py), over anything `--env` says: refused there.
RANK_VARIABLES = frozenset(
    {
        "FACTORY_JOB_ID", "FACTORY_RESTART_COUNT", "MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK",
        "WORLD_SIZE", "RANK", "NPROC_PER_NODE", "CUDA_VISIBLE_DEVICES",
    }
)  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Tries at a fresh id when the one drawn is taken (two submits in one millisecond drawing the same random tail).
ID_TRIES = 5


def effective_user() -> str:
    """The login name of this process's effective user (its uid as text when the system has no name for it)."""
    import os
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def pairs(values: Sequence[str], option: str, example: str) -> tuple[tuple[str, str], ...]:
    """`K=V` values of a repeated option as (K, V) pairs, in the order given; a usage error for one without `=`."""
    found = []
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key:
            raise UsageError(f"{option} {value!r} is not KEY=VALUE.", f"e.g. {option} {example}")
        found.append((key, rest))
    return tuple(found)


def check_env(env: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`--env` pairs whose names a process environment takes, none the executor sets itself (RANK_VARIABLES)."""
    for key, value in env:
        if not _ENV_NAME.fullmatch(key):
            raise UsageError(
                f"--env {key!r} is no environment variable name.",
                "use letters, digits and _ (e.g. --env NCCL_DEBUG=INFO).",
            )
        if key in RANK_VARIABLES:
            raise UsageError(
                f"--env {key} is set by factoryctl for every rank and cannot be given.",
                "see docs/jobs.md, The rank environment, for what each rank is given.",
            )
        if "\0" in value:
            raise UsageError(f"--env {key}'s value holds a NUL byte, which no environment can carry.")
    return env


def walltime_s(text: str | None) -> float | None:
    """`--walltime` (`2h`, `90m`, `1h30m`) in seconds; None when not given (the scheduler's default applies)."""
    if text is None:
        return None
    from factoryctl.config_schema import MAX_DURATION_S, parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise UsageError(f"--walltime: {error}.", "e.g. --walltime 2h or --walltime 1h30m.") from None
    if not 0 < seconds <= MAX_DURATION_S:
        raise UsageError(f"--walltime {text} is not from 1 s to 3650d.", "e.g. --walltime 2h or --walltime 1h30m.")
    return seconds


def deadline_time(text: str, now: float) -> float:
    """`--deadline`: an ISO-8601 time, or a duration from now (`12h`); a usage error when it is not ahead."""
    from factoryctl.cli.telemetry import parse_when
    from factoryctl.config_schema import MAX_DURATION_S, parse_duration

    try:
        at = now + min(parse_duration(text), MAX_DURATION_S)
    except ValueError:
        at = parse_when(text, now, "--deadline")  # an ISO time, or its usage error
    if at <= now:
        raise UsageError(
            f"--deadline {text} is not in the future.", "give a time ahead, or a duration from now (--deadline 12h)."
        )
    return at


def eligible_nodes(config: FactoryConfig, target: str | None, labels: tuple[tuple[str, str], ...]) -> list[NodeSpec]:
    """The inventory nodes the job may run on: TARGET's (every node without one) that carry every label."""
    nodes = config.resolve_target(target)
    for key, value in labels:
        carrying = [n for n in nodes if n.labels.get(key) == value]
        if not carrying:
            known = sorted({f"{k}={v}" for n in config.nodes.values() for k, v in n.labels.items()})
            raise UsageError(
                f"no node{' of ' + target if target else ''} has the label {key}={value}.",
                f"labels in factory.yaml: {', '.join(known[:10])}." if known else "factory.yaml gives no node a label.",
            )
        nodes = carrying
    return nodes


def check_fits(spec: JobSpec, nodes: Sequence[NodeSpec], where: str) -> None:
    """A usage error when the job can never fit on `nodes`, as far as factory.yaml says their GPUs (else no check)."""
    counts = [n.sim.gpus if n.sim is not None else n.gpus for n in nodes]
    if any(c is None for c in counts):
        return  # a node whose GPUs factory.yaml does not give: the scheduler judges once it has been sampled
    known = [c for c in counts if c is not None]
    hint = f"{where} has {sum(known)} GPU(s) on {len(known)} node(s), at most {max(known, default=0)} on one."
    if spec.num_gpus > sum(known):
        raise UsageError(
            f"the job asks for {spec.num_gpus} GPUs; {where} has {sum(known)}, so it could never start.", hint
        )
    per_node = spec.gpus_per_node
    if per_node is not None and sum(c >= per_node for c in known) < spec.num_gpus // per_node:  # a rank per node
        raise UsageError(
            f"the job asks for {spec.num_gpus // per_node} node(s) with {per_node} GPUs each; "
            f"{where} cannot give them, so it could never start.",
            f"{hint} A gang runs one rank on each of its nodes.",
        )


def new_job(store: Store, job: Job) -> Job:
    """Write `job` as PENDING, under a fresh id when the one drawn is taken; the job as written."""
    from factoryctl.model.job_ids import new_job_id
    from factoryctl.store.jobs import job_event
    from factoryctl.store.sqlite import StoreError

    for attempt in range(ID_TRIES):
        try:
            store.add_job(job, [job_event(job, job.submitted_at)])
            return job
        except StoreError:
            if attempt == ID_TRIES - 1 or store.job(job.id) is None:
                raise  # not a taken id: the store's own failure, said as it is
            job = job.evolve(id=new_job_id(time.time()))
    raise AssertionError("unreachable")  # pragma: no cover


def submit_command(
    ctx: typer.Context,
    command: list[str] = typer.Argument(
        ...,
        metavar="CMD...",
        help="What each rank runs: every word from the first one on is the command's (`--` before it is optional).",
        show_default=False,
    ),
    gpus: int = typer.Option(1, "--gpus", min=1, max=1_000_000, help="GPUs over the whole gang."),
    gpus_per_node: int | None = typer.Option(
        None, "--gpus-per-node", min=1, max=10_000, help="Split the gang into nodes of this many GPUs each."
    ),
    name: str = typer.Option("", "--name", help="A name for the listing (default: the job's id)."),
    walltime: str | None = typer.Option(
        None, "--walltime", help="Longest run (2h, 90m, 1h30m); killed past it (default: scheduler.default_walltime)."
    ),
    priority: int = typer.Option(0, "--priority", min=-1_000_000, max=1_000_000, help="Larger runs first."),
    nodes: str | None = typer.Option(
        None,
        "--nodes",
        help="Run only on these nodes: node set, @group or all.",
        autocompletion=context.complete_target,
    ),
    label: list[str] = typer.Option([], "--label", metavar="K=V", help="Only nodes with this label; repeatable."),
    env: list[str] = typer.Option([], "--env", metavar="K=V", help="Set this in every rank's environment; repeatable."),
    deferrable: bool = typer.Option(False, "--deferrable", help="The job may wait for cheap electricity."),
    max_price: float | None = typer.Option(
        None, "--max-price", min=0, help="With --deferrable: the highest price (per MWh) it starts at."
    ),
    deadline: str | None = typer.Option(
        None, "--deadline", help="With --deferrable: when it must be done, an ISO time or a duration from now (12h)."
    ),
    chdir: str | None = typer.Option(
        None, "--chdir", metavar="DIR", help="Where each rank starts, on its node (default: the current directory)."
    ),
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
) -> None:
    """Queue a gang job: one rank per node runs CMD; it prints the job's id (-o json: the job)."""
    from factoryctl.model.jobs import JobSpec

    now = time.time()
    if (max_price is not None or deadline is not None) and not deferrable:
        raise UsageError(
            "--max-price and --deadline are for a --deferrable job.", "add --deferrable, or leave them out."
        )
    if gpus_per_node is not None and gpus % gpus_per_node:
        raise UsageError(
            f"--gpus {gpus} is not a multiple of --gpus-per-node {gpus_per_node}.",
            "the gang is --gpus / --gpus-per-node nodes.",
        )
    if len(name) > 200 or "\n" in name:
        raise UsageError("--name is one line of at most 200 characters.")
    config = context.load(ctx)
    labels = pairs(label, "--label", "gpu=h100")
    allowed = eligible_nodes(config, nodes, labels)
    spec = JobSpec(
        num_gpus=gpus,
        name=name,
        user=effective_user(),
        command=tuple(command),
        gpus_per_node=gpus_per_node,
        nodes=tuple(n.name for n in allowed) if nodes not in (None, "all") else (),
        labels=labels,
        priority=priority,
        walltime_s=walltime_s(walltime),
        deferrable=deferrable,
        max_price=max_price,
        deadline=deadline_time(deadline, now) if deadline is not None else None,
        cwd=_directory(chdir),
        env=check_env(pairs(env, "--env", "NCCL_DEBUG=INFO")),
    )
    check_fits(spec, allowed, _where(nodes, labels))
    _submitted(ctx, config, spec, now, output, [n.name for n in allowed])


def _where(target: str | None, labels: tuple[tuple[str, str], ...]) -> str:
    """How the refusal of a job too big names the nodes it may use."""
    if target not in (None, "all"):
        return f"{target}{' with those labels' if labels else ''}"
    return "the labelled nodes" if labels else "the inventory"


def _submitted(
    ctx: typer.Context, config: FactoryConfig, spec: JobSpec, now: float, output: OutputFormat, allowed: list[str]
) -> None:
    """Write the job and print it: its id (table, -q), or the job object (json, yaml); how it starts on stderr.

    `allowed`: the nodes it may run on, of which those the store has never heard from are named in how it starts.
    """
    from factoryctl.cli.jobs import open_jobs
    from factoryctl.cli.render import dump_json, dump_yaml, emit
    from factoryctl.model.job_ids import new_job_id
    from factoryctl.model.jobs import Job

    store = open_jobs(config, write=True)
    assert store is not None
    try:
        job = new_job(store, Job(new_job_id(now), spec, now))
        heard = store.gpu_indexes(allowed)  # what the pass knows a node by (jobs/cluster.py): its GPUs, stored
    finally:
        store.close()
    if output is OutputFormat.json:
        emit(dump_json(job.as_json()))
    elif output is OutputFormat.yaml:
        emit(dump_yaml(job.as_json()))
    else:
        emit(job.id + "\n")
    if not context.global_options(ctx)[1]:
        sys.stderr.write(f"factoryctl: job {job.id} is PENDING; {_how_it_starts(config, allowed, heard)}.\n")


def _how_it_starts(config: FactoryConfig, allowed: list[str], heard: Mapping[str, Any]) -> str:
    """How a PENDING job gets started: by the controller's passes, else by `sched tick`, once the store knows nodes.

    A pass places jobs only on nodes the store has heard from (a sample): before a first `telemetry collect` or
    controller, `sched tick` alone leaves the job waiting for them.
    """
    from factoryctl.model.folding import fold_nodes
    from factoryctl.store.lock import controller_is_running

    if controller_is_running(config.state_dir):
        return "the controller starts it when its GPUs are free"
    unheard = [name for name in allowed if name not in heard]
    if unheard:
        return (
            f"no controller runs, and the store has never heard from {fold_nodes(unheard)}: run `factoryctl telemetry"
            " collect --once` then `factoryctl sched tick`, or `factoryctl controller run`, which does both"
        )
    return "no controller runs, so `factoryctl sched tick` starts it when its GPUs are free (run it from cron)"


def _directory(chdir: str | None) -> str:
    """Where the ranks start: `--chdir` made absolute, else the current directory (a usage error when it is gone)."""
    import os

    if chdir is not None and os.path.isabs(chdir):
        return os.path.normpath(chdir)
    try:
        here = os.getcwd()
    except OSError:
        raise UsageError(
            "the current directory no longer exists, and the ranks would start there.",
            "cd to an existing directory, or give --chdir DIR (on the nodes).",
        ) from None
    return os.path.normpath(os.path.join(here, chdir)) if chdir else here


def register(app: typer.Typer) -> None:
    """Add `submit` to the `jobs` noun."""
    app.command(
        "submit",
        cls=ExecCommand,
        short_help="Queue a gang job: one rank per node runs CMD.",
    )(submit_command)
