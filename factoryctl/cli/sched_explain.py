"""`factoryctl sched explain`: every job's state and the scheduler's reason at one instant of a trace replay.

`sched simulate` answers "how good is this policy on my trace"; this answers "why was that job still waiting on
day 3". It replays the trace with the simulator up to `--at` and prints the pass at that instant with the same
reasons the live scheduler gives. The scheduler modules are imported inside the command (fast `--help`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.completion import complete_choices
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, emit, render_listing
from factoryctl.cli.sched import (
    GPUS_PER_NODE_OPTION,
    GRACE_OPTION,
    NODES_OPTION,
    POLICY_NAMES,
    PREEMPTION_OPTION,
    RACK_SIZE_OPTION,
    TRACE_OPTION,
    OneTraceCommand,
    nothing_fits,
    policy_config,
    read_trace,
    seconds_cell,
    seconds_within,
    warn_skipped,
    with_preemption,
)
from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from factoryctl.scheduler.replay_explain import Explanation, JobAtInstant
    from factoryctl.scheduler.trace import TraceJob

COLUMNS = (
    Column("id", "JOB"),
    Column("state", "STATE"),
    Column("num_gpus", "GPUS"),
    Column("submit_s", "SUBMIT S", show=seconds_cell),
    Column("waited_s", "WAITED S", show=seconds_cell),
    Column("start_s", "START S", wide_only=True, show=seconds_cell),
    Column("reserved_start_s", "RESERVED START S", wide_only=True, show=seconds_cell),
    Column("reason", "REASON"),
)
_AT_HINT = "give the time in the trace's seconds, e.g. --at 259200 or --at 3d."


#: The units --at takes after its number, in seconds (as durations elsewhere: `90s`, `15m`, `24h`, `3d`).
_AT_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _at(value: object) -> float:
    """A parser for --at: seconds into the trace (`259200`, `1e5`, `72h`, `1e5s`), else our one-sentence usage error.

    Any number the trace's own columns take (decimals, an exponent) takes a unit too: `1e5` and `100s` were
    accepted but `1e5s` refused.
    """
    from factoryctl.scheduler.trace import MAX_SECONDS

    text = str(value).strip()
    number, unit = (text[:-1].rstrip(), text[-1].lower()) if text[-1:].lower() in _AT_UNITS else (text, "s")
    try:
        if not number.isascii() or "_" in number:  # as trace numbers: `1_000` and full-width digits are typos
            raise ValueError(number)
        seconds = float(number) * _AT_UNITS[unit]
    except ValueError:
        raise UsageError(f"--at must be a time in seconds, not {text!r}.", _AT_HINT) from None
    return seconds_within(
        "--at", seconds, text, MAX_SECONDS, f"{MAX_SECONDS:g} seconds (the latest time a trace may hold)", _AT_HINT
    )


#: The keys of a job item (`_item`), in order: the CSV header when no job is listed.
JOB_FIELDS = (
    "id", "state", "num_gpus", "submit_s", "start_s", "waited_s", "allocation", "reserved_start_s", "reserved_nodes",
    "reason",
)  # fmt: skip


def _item(job: JobAtInstant) -> dict[str, Any]:
    """A job's JSON/table item."""
    return {
        "id": job.job_id,
        "state": job.state,
        "num_gpus": job.num_gpus,
        "submit_s": job.submit_s,
        "start_s": job.start_s,
        "waited_s": job.waited_s,
        "allocation": [{"node": node, "gpus": gpus} for node, gpus in job.allocation],
        "reserved_start_s": job.reserved_start_s,
        "reserved_nodes": list(job.reserved_nodes),
        "reason": job.reason,
    }


#: The most of a trace read to complete `--job`: a keystroke must be answered at once, whatever the trace's size.
COMPLETION_BYTES = 4 << 20


def _complete_job_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """`--job` candidates: the job ids of the regular file given to --trace before it (no pipe is read), else none.

    Only its first COMPLETION_BYTES are read and split as CSV, without the trace's checks: a wrong candidate costs
    nothing, a slow one every keystroke. Ids already given to `--job` are not offered again.
    """
    import csv

    given = ctx.params.get("trace")
    path = Path(str(given)) if given is not None and str(given) != "-" else None
    try:
        if path is None or not path.is_file():
            return []
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as stream:
            head = stream.read(COMPLETION_BYTES)
    except OSError:
        return []
    lines = head.splitlines()
    if len(head) == COMPLETION_BYTES:  # cut short: its last line may be part of a row
        lines.pop()
    rows = (row for row in csv.reader(lines) if any(row))
    header = [name.strip().lower() for name in next(rows, [])]
    if "job_id" not in header:
        return []
    column, taken = header.index("job_id"), set(ctx.params.get("job") or ())
    ids = dict.fromkeys(row[column].strip() for row in rows if len(row) > column)
    return [i for i in ids if i and i.startswith(incomplete) and i not in taken]


_POLICY_OPTION: Any = typer.Option(
    [],
    "--policy",
    metavar="<str>",
    show_default=False,
    help="The policy to replay: fifo, sjf, easy or default.  [default: default]",
    autocompletion=complete_choices(POLICY_NAMES),
)
_JOB_OPTION: Any = typer.Option(
    [],
    "--job",
    metavar="ID",
    help="Show just this job (repeat for more), whatever its state.",
    autocompletion=_complete_job_ids,
)


def register(sched_app: typer.Typer) -> None:
    """Add `explain` to the `sched` app."""

    @sched_app.command(
        "explain", cls=OneTraceCommand, short_help="Replay a job trace up to --at: each job's state and why."
    )
    def explain_command(
        ctx: typer.Context,
        trace: Path = TRACE_OPTION,
        nodes: int = NODES_OPTION,
        at: float = typer.Option(..., "--at", parser=_at, metavar="SECONDS", help="The instant: seconds, or 72h, 3d."),
        gpus_per_node: int = GPUS_PER_NODE_OPTION,
        rack_size: int | None = RACK_SIZE_OPTION,
        policy: list[str] = _POLICY_OPTION,
        preemption: bool = PREEMPTION_OPTION,
        grace: float | None = GRACE_OPTION,
        job: list[str] = _JOB_OPTION,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
    ) -> None:
        """Replay a job trace up to --at and show each job's state there, with the scheduler's reason."""
        from factoryctl.cli.progress import replay_progress
        from factoryctl.scheduler.replay_explain import explain_at
        from factoryctl.scheduler.simulate import cluster_nodes
        from factoryctl.textfile import exact_number

        only_default = "give --policy default, or leave --preemption out."
        (config,) = with_preemption([policy_config(_one_policy(policy))], preemption, grace, only_default)
        jobs = read_trace(trace, context.global_options(ctx)[1])
        cluster = cluster_nodes(nodes, gpus_per_node, rack_size)
        label = f"replaying {config.name} to {exact_number(at)} s"  # as typed back into --at, never 3.024e+06
        with replay_progress(label, context.global_options(ctx)[1]) as progress:
            found = explain_at(jobs, cluster, config, at, job or None, progress)
        if len(found.rejected) == len(jobs):
            raise nothing_fits(found.rejected, jobs, nodes, gpus_per_node)
        if found.rejected:
            warn_skipped(found.rejected, jobs, nodes, gpus_per_node)
        if not found.jobs and not context.global_options(ctx)[1]:  # a note, as read_trace's: not under -q
            _say_why_empty(jobs, at, found)
        emit(render_listing([_item(j) for j in found.jobs], [], COLUMNS, output, no_header, JOB_FIELDS))


def _one_policy(given: list[str]) -> str:
    """The one policy `--policy` names (`default` when not given): a second would be silently dropped, so it is refused."""
    names = [name.strip() for value in given for name in value.split(",") if name.strip()]
    if len(names) > 1:
        raise UsageError(
            f"sched explain replays one policy, not {len(names)} ({', '.join(names)}).",
            "give --policy once; `sched simulate` compares policies.",
        )
    return names[0] if names else given[0] if given else "default"  # `--policy ''`: policy_named says what to give


def _say_why_empty(jobs: list[TraceJob], at: float, found: Explanation) -> None:
    """A note on stderr when no job is running or waiting at --at: before the first arrival or after the last end.

    Times are exact (`6087980 s`, not `6.08798e+06 s`), so the hint's can be pasted back into --at.
    """
    import sys

    from factoryctl.textfile import exact_number

    skipped = {r.job_id for r in found.rejected}
    first = min(j.submit_s for j in jobs if j.job_id not in skipped)
    if at < first:
        fits = " that fits the cluster" if skipped else ""
        note, hint = (
            f"no job{fits} has arrived by {exact_number(at)} s",
            f"the first one arrives at {exact_number(first)} s.",
        )
    elif found.last_end_s is not None:
        note = f"every job submitted by {exact_number(at)} s has ended"
        hint = f"the last one ended at {exact_number(found.last_end_s)} s."
    else:  # arrived yet neither shown nor ended: not expected, and no note beats a wrong one
        return
    sys.stderr.write(f"factoryctl: {note}.\nhint: {hint}\n")
