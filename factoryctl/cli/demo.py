"""`factoryctl demo`: a simulated factory on this machine (8 nodes x 8 H100), no GPUs or nodes needed.

It opens the dashboard, which needs a terminal, exactly as `dash` does: without one it is the same usage error
(exit 2), pointing at `--headless` (a fixed-length run, then one snapshot), so a script never runs on forever.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.cli.options import OUTPUT_OPTION
from factoryctl.cli.render import OutputFormat

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig

NO_TERMINAL_HINT = "without a terminal add --headless: `factoryctl demo --headless --duration 5 -o json`."


def register(app: typer.Typer) -> None:
    """Add `demo` to the root app."""

    @app.command("demo", short_help="The live dashboard on a simulated 8-node factory.")
    def demo_command(
        ctx: typer.Context,
        headless: bool = typer.Option(
            False, "--headless", help="No dashboard (and no terminal needed): run --duration, print the snapshot."
        ),
        duration: float = typer.Option(
            5.0,
            "--duration",
            callback=context.seconds_check("--duration", 0.0, "5"),
            help="Seconds to run with --headless, 0-86400 (the dashboard runs until you quit).",
        ),
        interval: float = typer.Option(
            1.0,
            "--interval",
            callback=context.seconds_check("--interval", 0.1, "1"),
            help="Seconds between samples (0.1-86400).",
        ),
        output: OutputFormat = OUTPUT_OPTION,
        read_only: bool = typer.Option(False, "--read-only", help="Dashboard without actions."),
    ) -> None:
        """Open the live dashboard on a simulated factory (8 nodes named demo[01-08], 8 simulated H100 each).

        The dashboard needs a terminal (else exit 2); in scripts use `--headless --duration S [-o json]`.
        q quits (exit 0), Ctrl-C or SIGINT too (exit 130); SIGTERM (exit 143) and SIGHUP (exit 129) restore
        the terminal first.
        """
        from factoryctl.demo import demo_config
        from factoryctl.stale_code import freeze_code

        freeze_code()  # it may run for hours, as `dash` does: an upgrade under it must not change what it runs
        if headless:
            quiet = context.global_options(ctx)[1]
            raise typer.Exit(_run_headless(demo_config(), duration, interval, output, quiet))
        from factoryctl.cli.dash import require_terminal

        require_terminal(NO_TERMINAL_HINT)
        from factoryctl.tui.app import run_dashboard

        status = run_dashboard(demo_config(), read_only=read_only, target=None)
        if status:
            raise typer.Exit(status)  # 130 after Ctrl-C or SIGINT, 143 after SIGTERM, 129 after SIGHUP


def _run_headless(config: FactoryConfig, duration: float, interval: float, output: OutputFormat, quiet: bool) -> int:
    """Keep the simulated factory sampled for `duration` seconds, then print the last snapshot as `gpus` does."""
    from factoryctl.cli.gpus import GPU_COLUMNS, gpu_items, table_view
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import emit, render_listing, report_node_errors
    from factoryctl.errors import most_severe
    from factoryctl.telemetry.poll import poll_nodes

    nodes = list(config.nodes.values())
    deadline = time.monotonic() + duration
    result = poll_nodes(config, nodes)
    from factoryctl.cli.screen_fit import moves_cursor

    live = not quiet and sys.stderr.isatty() and moves_cursor()  # a rewritten line is for a terminal, not for a log
    while time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        result = poll_nodes(config, nodes)
        if live:
            sys.stderr.write(f"\rdemo: {len(result.samples) - len(result.errors)}/{len(nodes)} nodes up")
    if live and duration > 0:
        sys.stderr.write("\n")
    errors = [e.as_json() for e in result.errors]
    items = gpu_items(result.samples, None)
    if output in (OutputFormat.table, OutputFormat.wide):
        items = [table_view(i) for i in items]
    emit(render_listing(items, errors, GPU_COLUMNS, output))
    report_node_errors((e.as_report() for e in result.errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in result.errors]))
