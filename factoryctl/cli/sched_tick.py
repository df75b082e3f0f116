"""`factoryctl sched tick`: one scheduling pass over the store's queue, as the controller runs on a timer.

For cron (`* * * * * factoryctl -q sched tick`) or a person who wants the queue moved now: running gangs are checked
on their nodes, waiting jobs get the scheduler's reasons, and the gangs it places are launched. It prints what the
pass changed, one line per job (`-o json`: the changed jobs' records with their previous state).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, emit, render_listing

if TYPE_CHECKING:
    from factoryctl.jobs.tick import TickReport

COLUMNS = (
    Column("id", "JOB"),
    Column("name", "NAME"),
    Column("previous_state", "WAS"),
    Column("state", "STATE"),
    Column("reason", "REASON"),
)


def _items(report: TickReport) -> list[dict[str, Any]]:
    """Each job whose state or reason the pass changed, as its record with the state it was in.

    A running gang whose ranks' pids and times were only brought up to date is no change a person reads.
    """
    return [
        {**c.after.as_json(), "previous_state": c.before.state.value}
        for c in report.changes
        if (c.before.state, c.before.reason) != (c.after.state, c.after.reason)
    ]


def _summary(report: TickReport) -> str:
    """The stderr line after the table: how many wait, and the nodes the scheduler knew nothing of."""
    line = f"{report.waiting} job{'s' if report.waiting != 1 else ''} waiting"
    if report.strays:
        from factoryctl.model.folding import fold

        nodes = fold([node for node, _ in report.strays])
        line += f"; killed {len(report.strays)} stray rank launch{'es' if len(report.strays) != 1 else ''} on {nodes}"
        line += " (running, but no job holds them)"
    if report.unsignalled:
        from factoryctl.model.folding import fold

        line += (
            f"; {fold([node for node, _ in report.unsignalled])} did not take a preempted job's SIGTERM (it gets"
            " SIGKILL at the end of its grace)"
        )
    if report.unknown_nodes:
        from factoryctl.model.folding import fold_nodes

        line += (
            f"; left out {fold_nodes(list(report.unknown_nodes))} ({len(report.unknown_nodes)}): never reached yet"
            " (run the controller, or `factoryctl telemetry collect --once`)"
        )
    return line


def register(sched_app: typer.Typer) -> None:
    """Add `tick` to the `sched` app."""

    @sched_app.command("tick", short_help="One scheduling pass: check running jobs, start what fits.")
    def tick(
        ctx: typer.Context,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
    ) -> None:
        """One scheduling pass over the queue, as the controller makes every scheduler interval.

        Running jobs are checked on their nodes (finished, failed and requeued, past their walltime); waiting jobs
        get the scheduler's reason; the jobs it places start on every node of their gang at once. Prints the jobs
        it changed; the count still waiting goes to stderr.
        """
        from factoryctl.jobs.price_now import price_now
        from factoryctl.jobs.tick import run_tick
        from factoryctl.store.sqlite import Store

        config = context.load(ctx)
        price, why_none = price_now(config, time.time())
        if why_none is not None:
            sys.stderr.write(f"factoryctl: {why_none}; deferrable jobs are not held back this pass.\n")
        store = Store(config.store_path)
        try:
            report = run_tick(config, store, price=price)
        finally:
            store.close()
        items = _items(report)
        if items or output not in (
            OutputFormat.table,
            OutputFormat.wide,
        ):  # a pass that changed nothing prints no lone header (cron)
            emit(render_listing(items, [], COLUMNS, output, no_header))
        if not context.global_options(ctx)[1]:
            sys.stderr.write(_summary(report) + "\n")
