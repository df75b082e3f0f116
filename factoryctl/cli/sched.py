"""`factoryctl sched`: the scheduler from the command line, starting with `sched simulate` (trace replay).

`simulate` lets an operator compare our default policy with the textbook ones on their own trace before trusting
it with a cluster. The scheduler modules are imported inside the command so `factoryctl --help` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from factoryctl.cli.render import NO_HEADER_OPTION, OUTPUT_OPTION, Column, OutputFormat, emit, render_listing
from factoryctl.errors import UsageError

app = typer.Typer(no_args_is_help=True)

COLUMNS = (
    Column("policy", "POLICY"),
    Column("jobs", "JOBS"),
    Column("avg_jct_s", "AVG JCT S"),
    Column("avg_queue_s", "AVG QUEUE S"),
    Column("p50_queue_s", "P50 QUEUE S", wide_only=True),
    Column("p99_queue_s", "P99 QUEUE S"),
    Column("max_queue_s", "MAX QUEUE S"),
    Column("big_avg_jct_s", "BIG AVG JCT S", wide_only=True),
    Column("big_max_queue_s", "BIG MAX QUEUE S", wide_only=True),
    Column("gpu_utilization", "GPU UTIL", show=lambda v: f"{v:.1%}"),
    Column("makespan_s", "MAKESPAN S", wide_only=True),
    Column("pass_time_p50_ms", "PASS P50 MS", wide_only=True, show=lambda v: f"{v:.3f}"),
    Column("pass_time_p99_ms", "PASS P99 MS", wide_only=True, show=lambda v: f"{v:.3f}"),
    Column("rejected_jobs", "REJECTED", wide_only=True),
)


def _number(value: float) -> str:
    """Seconds for the CSV: integers stay integers, other values keep full precision."""
    return str(int(value)) if value == int(value) else repr(value)


def _read_trace(path: Path) -> list[Any]:
    from factoryctl.scheduler.trace import parse_trace

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return parse_trace(handle, source=str(path))
    except UsageError as error:
        if error.hint is not None:
            raise
        raise UsageError(
            error.message, "a trace has job_id,submit_time_s,duration_s,num_gpus (see docs/scheduler.md)."
        ) from None
    except OSError as error:
        raise UsageError(
            f"cannot read trace {path}: {error.strerror or error}.", "check the path given to --trace."
        ) from None


@app.command("simulate")
def simulate_command(
    trace: Path = typer.Option(..., "--trace", help="Job trace CSV: job_id,submit_time_s,duration_s,num_gpus,..."),
    nodes: int = typer.Option(..., "--nodes", min=1, help="Nodes in the simulated cluster."),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", min=1, help="GPUs on each node."),
    policy: str = typer.Option("fifo,sjf,easy,default", "--policy", help="Comma-separated policies to replay."),
    rack_size: int | None = typer.Option(None, "--rack-size", min=1, help="Nodes per rack (topology)."),
    schedule_out: Path | None = typer.Option(
        None, "--schedule-out", help="Write job_id,policy,submit_s,start_s,end_s,allocation rows here."
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Replay a job trace through the scheduler under each policy and report delays and utilisation."""
    import sys

    from factoryctl.scheduler.metrics import summarize
    from factoryctl.scheduler.policy import policy_named
    from factoryctl.scheduler.simulate import cluster_nodes, simulate

    configs = [policy_named(name.strip()) for name in policy.split(",") if name.strip()]
    if not configs:
        raise UsageError("no policy given", hint="e.g. --policy fifo,sjf,easy,default")
    jobs = _read_trace(trace)
    cluster = cluster_nodes(nodes, gpus_per_node, rack_size)
    results = [simulate(jobs, cluster, config) for config in configs]
    rejected = results[0].rejected
    if rejected:
        names = ", ".join(r.job_id for r in rejected[:5]) + (" ..." if len(rejected) > 5 else "")
        sys.stderr.write(
            f"factoryctl: {len(rejected)} job(s) can never run on this cluster and were skipped: {names}\n"
        )
        sys.stderr.write(f"hint: {rejected[0].reason}; add nodes or GPUs per node\n")
    if schedule_out is not None:
        _write_schedule(schedule_out, results)
    emit(render_listing([summarize(r) for r in results], [], COLUMNS, output, no_header))


def _write_schedule(path: Path, results: list[Any]) -> None:
    lines = ["job_id,policy,submit_s,start_s,end_s,allocation"]
    for result in results:
        for r in sorted(result.records, key=lambda r: (r.submit_s, r.job_id)):
            row = (r.job_id, r.policy, _number(r.submit_s), _number(r.start_s), _number(r.end_s), r.allocation_text())
            lines.append(",".join(row))
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"cannot write {path}: {error.strerror or error}.", "check that its directory exists and is writable."
        ) from None
