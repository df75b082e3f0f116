"""`factoryctl power set / reset`: explicit GPU power limits, refused out of range (exit 2), audited.

A node that cannot be reached is reported (exit 4, or the class of its failure) and the others are still set, as
every fan-out command does; the all-or-nothing range rule applies to the GPUs of the nodes that answered.
The table folds nodes whose GPUs changed alike into one row (`n[001-200] (200)`, GPUs `0-7`), as exec folds identical
outputs: at 2,000 nodes one row per GPU was 16,000 lines of the same change. `-o wide`, json, yaml and csv keep one
row per GPU, which scripts read.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, fold, limit_watts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from factoryctl.errors import NodeError
    from factoryctl.power.limit_checks import LimitsRefused
    from factoryctl.power.limit_progress import LimitProgress
    from factoryctl.power.limits import LimitChange
    from factoryctl.store.sqlite import StoreError

CHANGE_COLUMNS = (
    Column("node", "NODE"),
    Column("gpu", "GPU"),
    Column("before_w", "BEFORE W", show=limit_watts),
    Column("enforced_w", "ENFORCED W", show=limit_watts),
    Column("clamped", "CLAMPED"),
)
#: The table's columns: nodes whose GPUs changed alike (the same GPUs, before, after, clamped) share a row.
FOLDED_COLUMNS = (
    Column("nodes", "NODES"),
    Column("gpus", "GPUS"),
    *CHANGE_COLUMNS[2:],
)
REASON_OPTION = context.reason_option("Why (stored with each change in the audit log: `factoryctl audit`).")


def _run(
    ctx: typer.Context,
    target: str,
    watts: float | None,
    clamp: bool,
    output: OutputFormat,
    no_header: bool,
    timeout: float,
    reason: str | None,
    fanout: int,
) -> int:
    from factoryctl.config import parse_gpu_target
    from factoryctl.power.limit_checks import LimitsRefused
    from factoryctl.power.limits import apply_limit

    config = context.load(ctx)
    node_part, gpus = parse_gpu_target(target)
    nodes = config.resolve_target(node_part)
    why = (reason or "").strip() or None
    quiet = context.global_options(ctx)[1]

    def request(told: LimitProgress) -> tuple[list[LimitChange], list[NodeError]]:
        return apply_limit(config, nodes, gpus, watts, clamp, timeout, why, fanout, told)

    try:
        applied = run_request(request, quiet)
    except LimitsRefused as refused:
        return refused_status(refused)
    given_timeout = None if timeout == context.TIMEOUT_OPTION.default else timeout
    return show_outcome(applied, Rerun(watts, clamp, why, given_timeout), output, no_header, quiet)


def refused_status(refused: LimitsRefused) -> int:
    """A request refused whole (exit 2), said as any usage error is; then the nodes that could not be read for it.

    `power set all --watts 450` refused by an A100's range printed only that: the nodes down were not said.
    """
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors, terminal_safe

    message = refused.message.rstrip()
    sys.stderr.write(terminal_safe(f"factoryctl: {message}{'' if message.endswith('.') else '.'}") + "\n")
    if refused.hint:
        sys.stderr.write(terminal_safe(f"hint: {refused.hint}") + "\n")
    report_node_errors((error.as_report() for error in refused.errors), ERROR_HINTS)
    return int(refused.exit_code)


@dataclass(frozen=True)
class Rerun:
    """What a hint's command for fewer GPUs repeats of the request: every option that changes what it does.

    The lost-GPU hint said `power set a16/0-1,3-7 --watts 450` for a request given `--clamp --reason "OPS-9 peak"`:
    followed word for word it was refused (450 W is over an A100's range) and would have dropped the ticket from the
    audit log. `timeout` is the `--timeout` given, None for the default (a slow node timed out at the default before);
    the output options and `--fanout` change nothing of the limits and are left out, as is `--config` (no hint of
    factoryctl's names it). `verb` "apply" is `power apply`'s request: its command is `power apply TARGET` (each GPU
    to its own range's plan, with `--reason` and `--timeout` as given), not one group's watts for every range.
    """

    watts: float | None  # None: a reset
    clamp: bool = False
    reason: str | None = None
    timeout: float | None = None
    verb: str | None = None  # None: set, or reset without watts; "apply" gives neither watts nor clamp

    def command(self, target: str) -> str:
        """`power set TARGET --watts 450 --clamp --reason 'OPS-9 peak'`; `target` already quoted for the shell."""
        from factoryctl.textfile import exact_number

        words = ["power", self.verb or ("reset" if self.watts is None else "set"), target]
        if self.watts is not None:
            words += ["--watts", exact_number(self.watts)]  # every digit: `:g` made 287.1234567 287.123
        if self.clamp:
            words.append("--clamp")
        if self.reason:
            words += ["--reason", shlex.quote(self.reason)]
        if self.timeout is not None:
            words += ["--timeout", exact_number(self.timeout)]
        return " ".join(words)


@dataclass
class Applied:
    """What a request did: its changes and failed nodes, the interrupt that stopped it, the audit log's failure.

    `stopped` None: it ran through; `unrecorded` None: the changes are in the audit log.
    """

    changes: list[LimitChange] = field(default_factory=list)
    errors: list[NodeError] = field(default_factory=list)
    stopped: BaseException | None = None
    unrecorded: StoreError | None = None


def run_request(request: Callable[[LimitProgress], tuple[list[LimitChange], list[NodeError]]], quiet: bool) -> Applied:
    """Run `request` with SIGTERM and SIGHUP stopping it as Ctrl-C does; what it did, and what stopped it.

    A stop before any node was asked leaves `changes` empty; one while nodes changed brings what they did
    (`LimitsInterrupted`); one after the request returned (as the signal handlers are put back) keeps its result: the
    limits changed and are recorded, and the stop is said with them, never as "no power limit was changed".
    """
    from factoryctl.cli.signals import Terminated, sigterm_interrupts
    from factoryctl.power.limits import LimitsInterrupted, LimitsNotRecorded

    applied = Applied()
    try:
        with sigterm_interrupts():
            try:
                with _progress(quiet) as told:
                    applied.changes, applied.errors = request(told)
            except LimitsInterrupted as interrupted:
                applied.changes, applied.errors = interrupted.changes, interrupted.errors
                applied.stopped = interrupted.cause
            except LimitsNotRecorded as unrecorded:  # said after the listing, as a partial outcome's
                applied.changes, applied.errors = unrecorded.changes, unrecorded.errors
                applied.stopped, applied.unrecorded = unrecorded.stopped, unrecorded
            except (KeyboardInterrupt, Terminated) as stop:  # before the change step (none asked), or at its end
                applied.stopped = stop
    except (KeyboardInterrupt, Terminated) as stop:  # as the handlers were put back, after the request returned
        applied.stopped = applied.stopped or stop
    return applied


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[LimitProgress]:
    """The request's progress line on a terminal (`reading the nodes' GPUs: 42% of 48 nodes done`), never under -q.

    As `nodes` and `gpus` show theirs; wiped when the request ends, and before a note (what an interrupted request
    still waits for), which is said off a terminal too, but not under -q; a warning (`warning: ...`, the store would
    not close or drop requests) is said under -q too.
    """
    from factoryctl.cli.progress import replay_progress
    from factoryctl.power.limit_progress import LimitProgress

    with replay_progress("asking the nodes", quiet, unit="nodes done") as line:

        def step(name: str, done: int, total: int) -> None:
            if line is None:
                return
            if line.label != name:  # a new step: its line starts clean
                line.wipe()
                line.label = name
            line(done, total)

        def note(sentence: str) -> None:
            if line is not None:
                line.wipe()
            if not quiet or sentence.startswith("warning: "):
                sys.stderr.write(f"factoryctl: {sentence}\n")
                sys.stderr.flush()

        yield LimitProgress(step, note)


def show_outcome(applied: Applied, rerun: Rerun, output: OutputFormat, no_header: bool, quiet: bool) -> int:
    """Print what the request did (the listing, the errors, a stop's or the closing sentence); the exit status."""
    from dataclasses import asdict

    from factoryctl.cli.listing import show_listing
    from factoryctl.cli.signals import STOPPED_WORDS, report_stopped, stopped_status
    from factoryctl.power.limits import NO_LIMIT_CHANGED

    changes, errors, stopped, unrecorded = applied.changes, applied.errors, applied.stopped, applied.unrecorded
    hint_lost_gpus(errors, rerun)
    folded = output is OutputFormat.table
    items = folded_rows(changes) if folded else [asdict(c) for c in changes]
    # nothing changed and something failed (or stopped it): no table header over no rows, only sentences on stderr
    bare = no_header or not (items or not (errors or stopped))
    status = show_listing(lambda: (items, errors), FOLDED_COLUMNS if folded else CHANGE_COLUMNS, output, bare)
    if stopped is not None:
        code = stopped_status(stopped)
        report_stopped(code, f"{STOPPED_WORDS[code]}; {_left(changes, errors, unrecorded is None)}.")
        _say_unrecorded(unrecorded)
        return code
    if unrecorded is not None:  # a partial outcome's status (the nodes' most severe), else the store's failure, 1
        _say_unrecorded(unrecorded)
        return status or int(unrecorded.exit_code)
    if status and not _moved(changes):
        # the nodes that failed were left alone (or may have changed, unanswered), and none of the others changed
        # either: said once, unless every failed node's message says it already (a timeout before the request went out)
        if not errors or not all(error.message.endswith(NO_LIMIT_CHANGED) for error in errors):
            sys.stderr.write(f"factoryctl: {_left(changes, errors)}.\n")
    elif _wants_summary(changes, output, quiet):
        sys.stderr.write(f"factoryctl: {_summary(changes)}\n")
    return status


def _say_unrecorded(unrecorded: StoreError | None) -> None:
    """The audit log's failure to record the changes listed above, and its hint: keep the listing, free the store.

    Said after the listing and the nodes' errors, which are the only record of what changed (the log holds the
    requests); it used to be the only line, with an empty stdout.
    """
    from factoryctl.cli.render import terminal_safe

    if unrecorded is None:
        return
    keep = "the listing above is the only record of what changed (`-o json` has every GPU's before and after): keep it"
    sys.stderr.write(terminal_safe(f"factoryctl: {unrecorded.message}") + "\n")
    sys.stderr.write(terminal_safe(f"hint: {keep}; {unrecorded.hint or ''}".rstrip("; ")) + "\n")


def folded_rows(changes: Sequence[LimitChange]) -> list[dict[str, Any]]:
    """The table's rows: nodes whose GPUs changed alike share one, the rows in the order their first nodes come.

    A node's GPUs are grouped by (before, after, clamped), then nodes with the same GPUs in the same group are one
    row, `n[001-200] (200)` with its GPUs `0-7`, as exec folds nodes that printed the same (names within a row in
    ClusterShell's order: `b01,h[01-02]`).
    """
    from ClusterShell.RangeSet import RangeSet

    by_node: dict[str, dict[tuple[float | None, float | None, bool], list[int]]] = {}
    for change in changes:
        outcome = (change.before_w, change.enforced_w, change.clamped)
        by_node.setdefault(change.node, {}).setdefault(outcome, []).append(change.gpu)
    rows: dict[tuple[str, float | None, float | None, bool], list[str]] = {}
    for node, outcomes in by_node.items():
        for (before, after, clamped), gpus in outcomes.items():
            gpu_set = str(RangeSet.fromlist([str(gpu) for gpu in gpus]))
            rows.setdefault((gpu_set, before, after, clamped), []).append(node)
    return [
        {
            "nodes": fold(nodes) if len(nodes) == 1 else f"{fold(nodes)} ({len(nodes)})",
            "gpus": gpus,
            "before_w": before,
            "enforced_w": after,
            "clamped": clamped,
        }
        for (gpus, before, after, clamped), nodes in rows.items()
    ]


#: Past this many rows a table of changes ends with one summary line on stderr (a fleet is 16,000 rows).
SUMMARY_AFTER_ROWS = 20


def _wants_summary(changes: Sequence[LimitChange], output: OutputFormat, quiet: bool) -> bool:
    """A table (`-o table` or `wide`) of more than SUMMARY_AFTER_ROWS changes, without --quiet.

    The line is for a person reading a long table; json, yaml and csv are read by programs, which count the items.
    """
    table = output in (OutputFormat.table, OutputFormat.wide)
    return table and len(changes) > SUMMARY_AFTER_ROWS and not quiet


def _left(changes: Sequence[LimitChange], errors: Sequence[NodeError], recorded: bool = True) -> str:
    """What a stopped or failed request left: `no power limit was changed`, or what changed, and what may have.

    A node asked that never answered (`Unconfirmed`: stopped, or timed out) may have changed its limits, as its own
    line says: the closing sentence no longer said `no power limit was changed` under it. `recorded`: whether the
    audit log took the changes (not: said so, as `and recorded` was not true).
    """
    from factoryctl.power.limits import Unconfirmed

    moved = _moved(changes)
    unsure = len({error.node for error in errors if isinstance(error, Unconfirmed)})
    if moved:
        done = f"{moved} GPU limit(s) changed {'and recorded' if recorded else '(not in the audit log)'}"
    else:
        done = "no power limit change was confirmed" if unsure else "no power limit was changed"
    return f"{done}; the limits of {unsure} node(s) may have changed" if unsure else done


def _moved(changes: Sequence[LimitChange]) -> int:
    """How many of `changes` moved a limit: the others (already at the value) are listed, but not in the audit log."""
    from factoryctl.power.limit_audit import changed

    return sum(1 for c in changes if changed(c))


def _summary(changes: Sequence[LimitChange]) -> str:
    """The summary line: `16,000 GPU limits on 2,000 nodes set (15,992 changed, 3 clamped), in the audit log.`.

    The GPUs already at the value are not changes and have no audit entry: when none changed, the line says so.
    """
    nodes = len({c.node for c in changes})
    moved = _moved(changes)
    clamped = sum(1 for c in changes if c.clamped)
    said = f"{len(changes):,} GPU limits on {nodes:,} node{'s' * (nodes != 1)} set ({moved:,} changed"
    said += f", {clamped:,} clamped)" if clamped else ")"
    return f"{said}, in the audit log." if moved else f"{said}; none is in the audit log, as none changed."


def hint_lost_gpus(errors: Sequence[NodeError], rerun: Rerun | float | None) -> None:
    """A lost GPU refused its node: the hint is the command for the node's other GPUs, not a driver check.

    The command repeats the request's options (`rerun`; a bare number of watts, or None for a reset: no option
    besides), so followed word for word it does what was asked. Nodes
    with the same other GPUs share one hint, under their folded set (`report_node_errors`), quoted for the shell
    when the set needs it: zsh refuses an unquoted `n[44-47]/0-2,4-7` (a glob).
    """
    from factoryctl.transport.hints import LostGpuError

    if not isinstance(rerun, Rerun):
        rerun = Rerun(rerun)
    lost: dict[str, list[NodeError]] = {}  # the other GPUs -> the errors of the nodes that have them
    for error in errors:
        if isinstance(error, LostGpuError):
            lost.setdefault(error.others, []).append(error)
    for others, alike in lost.items():
        folded = f"{fold([error.node for error in alike])}/{others}"
        quote = "'" if shlex.quote(folded) != folded else ""  # the hint is folded to this: quoted as it will read
        for error in alike:
            target = f"{quote}{error.node}/{others}{quote}"
            error.hint = f"address the node's other GPUs alone, e.g. `factoryctl {rerun.command(target)}`."


def parse_watts(text: str) -> float:
    """`--watts`: a plain number of watts; `300W`, `0.3kW` or `80%` is a usage error that repeats the value.

    Python's own extras are refused too, as trace files refuse them: `3_00` (underscore digits, which `float` reads as
    300) and non-ASCII digits (`３００`).
    """
    try:
        if "_" in text or not text.isascii():
            raise ValueError(text)
        return float(text)
    except ValueError:
        from factoryctl.errors import UsageError

        raise UsageError(
            f"--watts `{text}` is not a number of watts; nothing was changed.",
            "give watts as a plain number, e.g. --watts 300 (see `factoryctl gpus` for each GPU's range).",
        ) from None


def register(power_app: typer.Typer) -> None:
    """Add `set` and `reset` to the `power` noun."""

    @power_app.command("set", short_help="Set GPU power limits, like `nvidia-smi -pl` on each node.")
    def set_command(
        ctx: typer.Context,
        target: str = context.REQUIRED_GPU_TARGET_ARG,
        watts: str = typer.Option(
            ..., "--watts", metavar="WATTS", help="Power limit per GPU, in watts: a plain number (300, 287.5)."
        ),
        clamp: bool = typer.Option(False, "--clamp", help="Clamp to each GPU's range instead of refusing."),
        reason: str | None = REASON_OPTION,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """Set GPU power limits, like `nvidia-smi -pl` on every node; out of range is refused (exit 2).

        A value outside any reachable GPU's range changes nothing; an unreachable node is reported and skipped
        (exit 4), and the reachable nodes are set.
        """
        raise typer.Exit(_run(ctx, target, parse_watts(watts), clamp, output, no_header, timeout, reason, fanout))

    @power_app.command("reset")
    def reset_command(
        ctx: typer.Context,
        target: str = context.REQUIRED_GPU_TARGET_ARG,
        reason: str | None = REASON_OPTION,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """Reset GPU power limits to each GPU's default."""
        raise typer.Exit(_run(ctx, target, None, False, output, no_header, timeout, reason, fanout))
