"""`factoryctl sched`: the scheduler from the command line, starting with `sched simulate` (trace replay).

`simulate` lets an operator compare our default policy with the textbook ones on their own trace before trusting
it with a cluster, with preemption on or off (`--preemption`, `--grace`); `sched explain` (its own module) reuses
the options and checks defined here. The scheduler modules are imported inside the commands so `factoryctl --help`
stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer
from typer.core import TyperCommand

from factoryctl.cli import context
from factoryctl.cli.arguments import exact_path
from factoryctl.cli.completion import complete_choice_list
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION, checked_choice
from factoryctl.cli.render import Column, OutputFormat, render_listing
from factoryctl.errors import ActionFailed, UsageError

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # typer >= 0.26 vendors click

    from factoryctl.cli.outfile import OutFile
    from factoryctl.scheduler.policy import SchedulerConfig
    from factoryctl.scheduler.simulate import Rejected, SimulationResult
    from factoryctl.scheduler.trace import TraceJob
    from factoryctl.scheduler.tracejobs import TraceJobs

app = typer.Typer(no_args_is_help=True)


def seconds_cell(value: float | None) -> str:
    """A time in a table, rounded to the second as the docs say (`-o json` keeps it exact)."""
    return "-" if value is None else f"{value:.0f}"


COLUMNS = (
    Column("policy", "POLICY"),
    Column("jobs", "JOBS"),
    Column("avg_jct_s", "AVG JCT S", show=seconds_cell),
    Column("avg_queue_s", "AVG QUEUE S", show=seconds_cell),
    Column("p50_queue_s", "P50 QUEUE S", wide_only=True, show=seconds_cell),
    Column("p99_queue_s", "P99 QUEUE S", show=seconds_cell),
    Column("max_queue_s", "MAX QUEUE S", show=seconds_cell),
    Column("big_avg_jct_s", "BIG AVG JCT S", wide_only=True, show=seconds_cell),
    Column("big_max_queue_s", "BIG MAX QUEUE S", wide_only=True, show=seconds_cell),
    Column("gpu_utilization", "GPU UTIL", show=lambda v: f"{v:.1%}"),
    Column("makespan_s", "MAKESPAN S", wide_only=True, show=seconds_cell),
    Column("pass_time_p50_ms", "PASS P50 MS", wide_only=True, show=lambda v: f"{v:.3f}"),
    Column("pass_time_p99_ms", "PASS P99 MS", wide_only=True, show=lambda v: f"{v:.3f}"),
    Column("rejected_jobs", "REJECTED", wide_only=True),
)


#: Shown after the other columns when `--preemption` is given.
PREEMPTION_COLUMNS = (
    Column("preemptions", "PREEMPTIONS"),
    Column("preempted_gpu_s", "GRACE GPU S", wide_only=True, show=lambda v: f"{v:.0f}"),
)

#: `--policy` completion candidates, kept here so completion does not import the scheduler (a test checks they are
#: `scheduler.policy.POLICIES`).
POLICY_NAMES = ("fifo", "sjf", "easy", "default")
#: The largest simulated cluster: far beyond any real one, small enough to build in memory at once.
MAX_NODES = 100_000
MAX_GPUS_PER_NODE = 1024
#: The longest grace period `--grace` accepts: a preempted job that needs more than a day to checkpoint is stuck.
MAX_GRACE_S = 86_400.0
_GRACE_HINT = "give the seconds a preempted job has to checkpoint, from 0 to 86400, e.g. --grace 300."


def _at_least_one(option: str, hint: str, most: int) -> Callable[[object], int]:
    """A parser for a count option: a whole number from 1 to `most`, else our one-sentence usage error (exit 2)."""

    def parse(value: object) -> int:
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise UsageError(f"{option} must be a whole number, not {str(value)!r}.", hint) from None
        if number < 1:
            raise UsageError(f"{option} must be at least 1, not {number}.", hint)
        if number > most:
            raise UsageError(f"{option} must be at most {most:,}, not {number:,}.", hint)
        return number

    return parse


def _grace(value: object) -> float:
    """A parser for --grace: seconds from 0 to a day (decimals allowed), else our one-sentence usage error."""
    text = str(value).strip()
    try:
        seconds = value if isinstance(value, float) else float(text)
    except ValueError:
        raise UsageError(f"--grace must be a number of seconds, not {text!r}.", _GRACE_HINT) from None
    return seconds_within("--grace", seconds, text, MAX_GRACE_S, f"{MAX_GRACE_S:,.0f} seconds (a day)", _GRACE_HINT)


def seconds_within(option: str, seconds: float, text: str, most: float, most_said: str, hint: str) -> float:
    """`seconds` if it is a number from 0 to `most` (said as `most_said`), else a one-sentence usage error."""
    if seconds != seconds:
        raise UsageError(f"{option} must be a number of seconds, not {text!r}.", hint)
    if 0 <= seconds <= most:
        return seconds
    # never rounded: "at most 86,400 seconds, not 86400" contradicted itself
    from factoryctl.textfile import exact_number

    if seconds < 0:
        raise UsageError(f"{option} must not be negative, not {exact_number(seconds)}.", hint)
    raise UsageError(f"{option} must be at most {most_said}, not {exact_number(seconds)}.", hint)


def read_trace(path: Path, quiet: bool = False) -> list[TraceJob]:
    """`load_trace` as a list of jobs, for `sched explain` (whose helpers take one); `simulate` keeps the columns."""
    return list(load_trace(path, quiet))


def load_trace(path: Path, quiet: bool = False) -> TraceJobs:
    """The --trace file parsed, or a usage error (exit 2) that names the line and says what a trace holds.

    `-` is stdin (`zcat trace.csv.gz | factoryctl sched simulate --trace - ...`), named `stdin` in the messages.
    The trace is parsed line by line as it is read, so only its jobs stay in memory (in columns, `TraceJobs`: about
    110 bytes a job where a `TraceJob` each took 210), and input that is no trace
    (`yes | ... --trace -`, `--trace /dev/zero`) is refused at its first line rather than read on.
    Columns the replay does not read (prices, deadlines, labels: the offline replay models none of them) are named
    once on stderr, unless `quiet`, so nobody takes a replay that ignored them for one that used them; so are
    columns the header leaves unnamed (`column 5 (no name)`), whose values are dropped as well.
    """
    from factoryctl.cli.arguments import is_std_stream
    from factoryctl.scheduler.trace import parse_trace
    from factoryctl.textfile import text_lines

    ignored: list[str] = []
    source = "stdin" if is_std_stream(path) else str(path)
    try:
        with _trace_stream(path) as stream:
            jobs = parse_trace(text_lines(stream, source, "trace"), source=source, ignored=ignored)
    except UsageError as error:
        if error.hint is not None:
            raise
        raise UsageError(
            error.message,
            "a trace is CSV with the columns job_id,submit_time_s,duration_s,num_gpus (times in seconds).",
        ) from None
    if not quiet:
        _note_ignored(source, ignored)
    return jobs


def _note_ignored(source: str, ignored: list[str]) -> None:
    """The note naming the trace's columns the replay does not read; the file's text in it is escaped.

    A header (or a file name) is the user's text: an ESC sequence or a line break in it must not reach the terminal
    as one (`escape_controls`, as every table and error does).
    """
    from factoryctl.model.telemetry import escape_controls
    from factoryctl.scheduler.trace import OPTIONAL, REQUIRED

    if ignored:
        sys.stderr.write(
            f"factoryctl: note: {escape_controls(source)}: ignoring column(s)"
            f" {', '.join(map(escape_controls, ignored))}: the replay does not model them"
            f" (it reads only {', '.join(REQUIRED + OPTIONAL)}).\n"
        )


_STDIN_HINT = "pipe the trace in (`--trace - < trace.csv`), or give --trace its path."


@contextmanager
def _trace_stream(path: Path) -> Iterator[BinaryIO]:
    """The trace's bytes: the file `path` open, or stdin for `-` (a terminal or a closed stdin is a usage error).

    A file that cannot be opened or read (missing, a directory, a read failing midway) is a usage error naming it,
    as `textfile.read_utf8` says it; stdin's the same as `outfile.stdin_text`'s.
    """
    import io

    from factoryctl.cli.arguments import is_std_stream

    if not is_std_stream(path):
        try:
            with path.open("rb") as stream:
                yield stream
        except OSError as exc:
            raise UsageError(f"cannot read trace {path}: {exc.strerror}.", "check the path given to --trace.") from exc
        return
    if sys.stdin is None or sys.stdin.closed:
        raise UsageError("--trace - reads the trace from stdin, which is closed.", _STDIN_HINT)
    if sys.stdin.isatty():
        raise UsageError("--trace - reads the trace from stdin, which is a terminal.", _STDIN_HINT)
    buffer = getattr(sys.stdin, "buffer", None)
    try:  # a text stream put in place of stdin (an embedding caller) is in memory already
        yield io.BytesIO(sys.stdin.read().encode()) if buffer is None else buffer
    except OSError as exc:
        raise UsageError(f"cannot read the trace from stdin: {exc.strerror or exc}.", _STDIN_HINT) from None


def _open_schedule(path: Path, trace: Path) -> OutFile:
    """--schedule-out opened before the replay, so a bad path fails in a second rather than after the whole run."""
    refusal = f"--schedule-out {path} is the trace itself; writing it would destroy the trace."
    from factoryctl.cli.arguments import is_std_stream
    from factoryctl.cli.outfile import open_out_file  # tempfile and friends: not at --help

    given = None if is_std_stream(trace) else trace  # stdin: no file here to write over (`./-` is another file)
    return open_out_file(path, "--schedule-out", f"schedule {path}", [(given, refusal)])


def _rejection_hint(rejected: Rejected, jobs: dict[str, TraceJob], nodes: int, gpus_per_node: int) -> str:
    """What to change for the first rejected job: the cluster's size, or the trace's shape columns.

    A job whose trace fixes its shape (`num_nodes`/`gpus_per_node`) is told only what can hold that shape: more
    GPUs per node cannot help a job whose node count is fixed, nor more nodes one whose GPUs per node are.
    """
    job = jobs.get(rejected.job_id)
    if job is None or job.gpus_per_node is None:  # the scheduler picks the shape: more of either helps
        return f"job {rejected.job_id} {rejected.reason}; add nodes (--nodes) or GPUs per node (--gpus-per-node)."
    per_node, count = job.gpus_per_node, job.num_gpus // job.gpus_per_node
    asks = f"job {rejected.job_id} asks for {_nodes_of(count, per_node)} in the trace's num_nodes/gpus_per_node columns"
    if count > MAX_NODES or per_node > MAX_GPUS_PER_NODE:
        most = _nodes_of(MAX_NODES, MAX_GPUS_PER_NODE)
        return f"{asks}, more than a simulated cluster may have (at most {most}); fix those columns."
    raises = [f"--nodes to at least {count}"] if count > nodes else []
    if per_node > gpus_per_node:
        raises.append(f"--gpus-per-node to at least {per_node}")
    has = _nodes_of(nodes, gpus_per_node)
    return f"{asks} and the cluster has {has}; raise {' and '.join(raises)}, or fix those columns."


def _nodes_of(nodes: int, gpus: int) -> str:
    """`4 nodes of 2 GPUs`, `1 node of 1 GPU`."""
    return f"{nodes:,} node{'s' * (nodes != 1)} of {gpus:,} GPU{'s' * (gpus != 1)}"


class OneTraceCommand(TyperCommand):
    """A command reading one trace: `--trace` given more than once is a usage error.

    Click keeps only the last value of an option given twice, so `--trace a.csv --trace b.csv` replayed b.csv alone
    and said nothing (a repeated `--policy` adds to the list, which made the dropped trace all the likelier to be
    taken for a second one replayed).
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """Parse as Click does, then count the `--trace`s given (completion never fails)."""
        words = list(args)  # Click's parser consumes the list it is given
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=words)  # it parsed once: it parses again
            given = sum(1 for param in order if param.name == "trace")
            if given > 1:
                times = "twice" if given == 2 else f"{given} times"
                raise UsageError(
                    f"--trace is given {times}, and a replay reads one trace.",
                    "give --trace once; to replay several traces together, join them into one file under one header.",
                )
        return rest


#: The simulated cluster and its trace, shared by `sched simulate` and `sched explain` (both `OneTraceCommand`s).
TRACE_OPTION: Any = typer.Option(
    ...,
    "--trace",
    path_type=str,
    readable=False,  # reading is ours: an unreadable file is said as any other file error (not Click's words)
    callback=exact_path("stdin"),
    help="Job trace CSV: job_id,submit_time_s,duration_s,num_gpus,... (-: stdin).",
)
NODES_OPTION: Any = typer.Option(
    ...,
    "--nodes",
    parser=_at_least_one("--nodes", "give the simulated cluster's size, e.g. --nodes 24.", MAX_NODES),
    help="Nodes in the simulated cluster.",
)
GPUS_PER_NODE_OPTION: Any = typer.Option(
    8,
    "--gpus-per-node",
    parser=_at_least_one(
        "--gpus-per-node", "give the GPUs on each simulated node, e.g. --gpus-per-node 8.", MAX_GPUS_PER_NODE
    ),
    help="GPUs on each node.",
)
RACK_SIZE_OPTION: Any = typer.Option(
    None,
    "--rack-size",
    parser=_at_least_one("--rack-size", "give the nodes per rack, e.g. --rack-size 4, or leave it out.", MAX_NODES),
    help="Nodes per rack (topology).",
)


def warn_skipped(rejected: Sequence[Rejected], jobs: Sequence[TraceJob], nodes: int, gpus_per_node: int) -> None:
    """Say on stderr which trace jobs the cluster can never hold (the replay skipped them), and what to change.

    Job ids are the trace's text: their control characters are escaped (`escape_controls`), as in errors and tables.
    """
    import sys

    from factoryctl.model.telemetry import escape_controls

    names = ", ".join(r.job_id for r in rejected[:5]) + (" ..." if len(rejected) > 5 else "")
    warning = f"factoryctl: {len(rejected)} job(s) can never run on this cluster and were skipped: {names}"
    hint = f"hint: {_rejection_hint(rejected[0], {j.job_id: j for j in jobs}, nodes, gpus_per_node)}"
    sys.stderr.write(f"{escape_controls(warning)}\n{escape_controls(hint)}\n")


def nothing_fits(
    rejected: Sequence[Rejected], jobs: Sequence[TraceJob], nodes: int, gpus_per_node: int
) -> ActionFailed:
    """The failure (exit 1) when no job of the trace fits on the cluster (`rejected` is every one of them)."""
    return ActionFailed(
        f"none of the {len(rejected)} job(s) in the trace fits on {nodes} node(s) of {gpus_per_node} GPUs,"
        " so nothing ran.",
        _rejection_hint(rejected[0], {job.job_id: job for job in jobs}, nodes, gpus_per_node),
    )


PREEMPTION_OPTION: Any = typer.Option(
    False,
    "--preemption",
    help="Let the default policy stop lower-priority jobs for a higher-priority one (what scheduler.preemption does"
    " in factory.yaml, which the replay never reads).",
)
GRACE_OPTION: Any = typer.Option(
    None,
    "--grace",
    parser=_grace,
    metavar="SECONDS",
    help="With --preemption: seconds a stopped job keeps its GPUs to checkpoint [default: 300].",
)


@app.command("simulate", cls=OneTraceCommand, short_help="Replay a job trace under each policy: delays, utilisation.")
def simulate_command(
    ctx: typer.Context,
    trace: Path = TRACE_OPTION,
    nodes: int = NODES_OPTION,
    gpus_per_node: int = GPUS_PER_NODE_OPTION,
    policy: list[str] = typer.Option(
        [],
        "--policy",
        metavar="<str>",
        show_default=False,
        help=f"Comma-separated policies to replay (repeat to add more).  [default: {','.join(POLICY_NAMES)}]",
        autocompletion=complete_choice_list(POLICY_NAMES),
    ),
    rack_size: int | None = RACK_SIZE_OPTION,
    schedule_out: Path | None = typer.Option(
        None,
        "--schedule-out",
        path_type=str,
        readable=False,  # an output: it need not be readable (Click checked that of an existing one)
        callback=exact_path("stdout"),
        help="Write job_id,policy,submit_s,start_s,end_s,allocation rows here (-: stdout; the table goes to stderr).",
    ),
    preemption: bool = PREEMPTION_OPTION,
    grace: float | None = GRACE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Replay a job trace through the scheduler under each policy and report delays and utilisation."""
    from functools import partial

    from factoryctl.cli.outfile import removed_on_failure

    configs = with_preemption(_policies(policy), preemption, grace)
    jobs = load_trace(trace, context.global_options(ctx)[1])
    opener = None if schedule_out is None else partial(_open_schedule, schedule_out, trace)
    with removed_on_failure(opener) as out:  # to the end: a stop while the results are written keeps no temp file
        results = _replay(jobs, configs, (nodes, gpus_per_node, rack_size), context.global_options(ctx)[1])
        _report(jobs, results, (nodes, gpus_per_node), (output, no_header, preemption), out)
    if len(results[0].rejected) == len(jobs):
        raise nothing_fits(results[0].rejected, jobs, nodes, gpus_per_node)


def policy_config(name: str) -> SchedulerConfig:
    """The policy `--policy` names (any case); an unknown name is refused as every other choice is (did you mean)."""
    from factoryctl.scheduler.policy import policy_named

    return policy_named(checked_choice(name, POLICY_NAMES, "policy"))


def _policies(given: list[str]) -> list[SchedulerConfig]:
    """The `--policy` lists as configurations: each once, in the order given (every policy when none is given).

    A repeated `--policy` adds to the list, as a comma does (`--policy easy --policy fifo` replays both).
    """
    names = [name.strip() for value in given or [",".join(POLICY_NAMES)] for name in value.split(",")]
    named = [policy_config(name) for name in names if name]
    configs = list({config.name: config for config in named}.values())
    if not configs:
        raise UsageError("no policy given", hint="e.g. --policy fifo,sjf,easy,default")
    return configs


def with_preemption(
    configs: list[SchedulerConfig],
    preemption: bool,
    grace: float | None,
    hint: str = "add default to --policy, e.g. --policy easy,default.",
) -> list[SchedulerConfig]:
    """Turn preemption on for the default policy (fifo, sjf and easy stay the textbook ones)."""
    import dataclasses

    if not preemption:
        if grace is not None:
            raise UsageError("--grace only applies with --preemption.", "add --preemption, or leave --grace out.")
        return configs
    if not any(config.name == "default" for config in configs):
        names = ", ".join(config.name for config in configs)
        raise UsageError(f"--preemption applies to the default policy only, not to {names}.", hint)
    return [
        dataclasses.replace(c, preemption=True, grace_s=c.grace_s if grace is None else grace)
        if c.name == "default"
        else c
        for c in configs
    ]


def _replay(
    jobs: Sequence[TraceJob], configs: list[SchedulerConfig], cluster: tuple[int, int, int | None], quiet: bool
) -> list[SimulationResult]:
    """Each policy's replay on the cluster (nodes, GPUs per node, rack size), with a progress line on a terminal."""
    from factoryctl.cli.progress import replay_progress
    from factoryctl.scheduler.simulate import cluster_nodes, simulate

    nodes = cluster_nodes(*cluster)
    results = []
    for config in configs:
        with replay_progress(f"replaying {config.name}", quiet) as progress:
            results.append(simulate(jobs, nodes, config, progress=progress))
    return results


def _report(
    jobs: Sequence[TraceJob],
    results: list[SimulationResult],
    cluster: tuple[int, int],
    view: tuple[OutputFormat, bool, bool],
    out: OutFile | None,
) -> None:
    """Warn about skipped jobs, print the table, then write the schedule to `out` (--schedule-out).

    `cluster` is the nodes and GPUs per node (the skipped jobs' hint says what to change), `view` the output format,
    `--no-header` and `--preemption` (which adds the preemption fields). The table comes first: a late write
    failure, such as a full disk, must not cost it.
    """
    output, no_header, preemption = view

    from factoryctl.cli.outfile import emit_then_write
    from factoryctl.cli.schedule_csv import schedule_csv
    from factoryctl.scheduler.metrics import summarize

    rejected = results[0].rejected
    if rejected and len(rejected) < len(jobs):
        warn_skipped(rejected, jobs, *cluster)
    columns = COLUMNS + PREEMPTION_COLUMNS if preemption else COLUMNS
    emit_then_write(
        out,
        lambda: render_listing([summarize(r, preemption) for r in results], [], columns, output, no_header),
        lambda: schedule_csv(results),
    )
