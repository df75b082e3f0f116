"""`factoryctl nodes drain / resume TARGET`: keep the scheduler off nodes, or let it back; persisted in the store."""

from __future__ import annotations

import typer

from factoryctl.cli import context
from factoryctl.cli.render import OUTPUT_OPTION, Column, OutputFormat, emit, render_listing

COLUMNS = (
    Column("node", "NODE"),
    Column("drained", "DRAINED"),
    Column("changed", "CHANGED"),
    Column("reason", "REASON"),
)


def _set(ctx: typer.Context, target: str, drained: bool, reason: str | None, output: OutputFormat) -> None:
    from factoryctl.store.sqlite import Store
    from factoryctl.store.who import login_name

    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    store = Store(config.store_path)
    try:
        changed = set(store.set_drained(names, drained, reason, login_name()))
        info = store.drained_nodes()
    finally:
        store.close()
    items = [
        {"node": n, "drained": n in info, "changed": n in changed, "reason": info[n].reason if n in info else None}
        for n in names
    ]
    if output is OutputFormat.table:
        verb = "drained" if drained else "resumed"
        done = [n for n in names if n in changed]
        already = "already drained" if drained else "not drained"
        emit(f"{verb}: {', '.join(done)}\n" if done else f"nothing to do: {already}\n")
    else:
        emit(render_listing(items, [], COLUMNS, output))


def register(nodes_app: typer.Typer) -> None:
    """Add `drain` and `resume` to the `nodes` app."""

    @nodes_app.command("drain")
    def drain(
        ctx: typer.Context,
        target: str = typer.Argument(..., help="Node set, @group or all.", autocompletion=context.complete_target),
        reason: str | None = typer.Option(
            None,
            "--reason",
            "-r",
            help="Why (shown by `nodes list -o wide` / -o json, with who and when, and in events).",
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Keep the scheduler off these nodes (running jobs are left alone); persisted until `nodes resume`."""
        _set(ctx, target, True, reason, output)

    @nodes_app.command("resume")
    def resume(
        ctx: typer.Context,
        target: str = typer.Argument(..., help="Node set, @group or all.", autocompletion=context.complete_target),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Let the scheduler use drained nodes again."""
        _set(ctx, target, False, None, output)
