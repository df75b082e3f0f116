"""`factoryctl controller run / status`: the daemon in the foreground, and what it is doing."""

from __future__ import annotations

import sys
from typing import Any

import typer

from factoryctl.cli import context
from factoryctl.cli.completion import complete_choices
from factoryctl.cli.render import OUTPUT_OPTION, OutputFormat, checked_choice, dump_json, dump_yaml, emit, iso_utc

app = typer.Typer(no_args_is_help=True)

#: The `--log-level` choices, for shell completion.
LOG_LEVELS = ("debug", "info", "warning", "error")


@app.command("run")
def run(
    ctx: typer.Context,
    log_level: str = typer.Option(
        "info",
        "--log-level",
        help="debug, info, warning or error (to stderr).",
        autocompletion=complete_choices(LOG_LEVELS),
    ),
) -> None:
    """Run the daemon in the foreground: stream every node into the store until SIGTERM; SIGHUP reloads."""
    level = checked_choice(log_level, LOG_LEVELS, "log level")
    from factoryctl.controller import run_controller

    config_path, _ = context.global_options(ctx)
    run_controller(config_path, level)


@app.command("status")
def status(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Whether a controller is running on this factory's store, and its latest figures."""
    import json
    import time

    from factoryctl.controller import STATS_KEY
    from factoryctl.store.lock import controller_is_running
    from factoryctl.store.sqlite import Store, StoreError

    config = context.load(ctx)
    running = controller_is_running(config.state_dir)
    doc: dict[str, Any] = {"running": running, "store": str(config.store_path), "newest_sample": None}
    try:
        store = Store(config.store_path, readonly=True)
    except StoreError:
        store = None
    if store is not None:
        try:
            newest = store.newest_sample_time()
            doc["newest_sample"] = iso_utc(newest)
            doc["newest_sample_age_s"] = round(time.time() - newest, 3) if newest else None
            raw = store.get_meta(STATS_KEY)
            figures = json.loads(raw) if raw else None
            if figures:  # the controller stores epoch seconds; show times as every other command does
                for key in ("started_at", "written_at"):
                    if isinstance(figures.get(key), (int, float)):
                        figures[key] = iso_utc(figures[key])
            doc["stats"] = figures
        finally:
            store.close()
    if output is OutputFormat.json:
        emit(dump_json(doc))
    elif output is OutputFormat.yaml:
        emit(dump_yaml(doc))
    else:
        stats: dict[str, Any] = doc.get("stats") or {}
        state = f"running (pid {stats.get('pid', '?')})" if running else "not running"
        lines = [f"controller: {state}", f"store: {doc['store']}", f"newest sample: {doc['newest_sample'] or '-'}"]
        if running and stats:
            lines.append(
                f"nodes: {stats.get('up', 0)} up of {stats.get('nodes', 0)}; samples {stats.get('samples', 0)}, "
                f"dropped {stats.get('dropped', 0)}, store errors {stats.get('store_errors', 0)}"
                + (f" (as of {stats['written_at']})" if stats.get("written_at") else "")
            )
        emit("\n".join(lines) + "\n")
    if not running:
        sys.stderr.write("hint: start it with `factoryctl controller run` (docs/controller.md has a systemd unit).\n")
        raise typer.Exit(1)
