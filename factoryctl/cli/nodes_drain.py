"""`factoryctl nodes drain / resume TARGET`: mark nodes as out of service, or back in it; persisted in the store.

`nodes` lists the flag with why, who and when (each change is an event); the scheduler's passes place no new job on a
drained node, while the jobs already running there run on (docs/scheduler.md).
"""

from __future__ import annotations

import typer

from factoryctl.cli import context
from factoryctl.cli.options import OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, emit, render_listing

COLUMNS = (
    Column("node", "NODE"),
    Column("drained", "DRAINED"),
    Column("changed", "CHANGED"),
    Column("reason", "REASON"),
)


def _set(ctx: typer.Context, target: str, drained: bool, reason: str | None, output: OutputFormat) -> None:
    from factoryctl.store.sqlite import Store
    from factoryctl.store.who import login_name

    reason = reason.strip() if reason is not None else None
    reason = reason or None  # `-r ""` is no reason, stored as null like no -r at all
    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    store = Store(config.store_path)
    try:
        was = set(store.drained_nodes())
        changed = set(store.set_drained(names, drained, reason, login_name()))
        info = store.drained_nodes()
    finally:
        store.close()
    items = [
        {"node": n, "drained": n in info, "changed": n in changed, "reason": info[n].reason if n in info else None}
        for n in names
    ]
    if output is OutputFormat.table:
        emit(_said(names, drained, changed, was))
    else:
        emit(render_listing(items, [], COLUMNS, output))


def _said(names: list[str], drained: bool, changed: set[str], was: set[str]) -> str:
    """The table form's lines: what changed, the reasons replaced, then the nodes left as they were, each if any.

    A target of some nodes already drained said only `drained: n18`, and a replaced reason read as a fresh drain.
    `was`: the nodes drained before this command. The nodes left alone are cut short past 200 characters, with
    their count (`resume all` of 2,000 nodes, a few drained, need not name the rest).
    """
    from factoryctl.cli.render import fold
    from factoryctl.model.folding import FOLD_MAX_CHARS, fold_nodes

    verb = "drained" if drained else "resumed"
    flipped = [n for n in names if n in changed and (n not in was) == drained]
    replaced = [n for n in names if n in changed and n in was and drained]
    alone = [n for n in names if n not in changed]
    lines = [f"{verb}: {fold(flipped)}"] if flipped else []
    lines += [f"reason replaced: {fold(replaced)}"] if replaced else []
    if alone:
        already = "already drained" if drained else "not drained"
        folded = fold_nodes(alone)
        folded += f" ({len(alone)})" if len(fold(alone)) > FOLD_MAX_CHARS else ""
        lines.append(f"nothing to do: {folded} {'is' if len(alone) == 1 else 'are'} {already}")
    return "".join(f"{line}\n" for line in lines)


def register(nodes_app: typer.Typer) -> None:
    """Add `drain` and `resume` to the `nodes` app."""

    @nodes_app.command("drain", short_help="Mark nodes drained: out of service until `nodes resume`.")
    def drain(
        ctx: typer.Context,
        target: str = context.REQUIRED_TARGET_ARG,
        reason: str | None = context.reason_option(
            "Why (shown by `nodes list -o wide` / -o json, with who and when, and in events)."
        ),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Mark nodes drained: out of service, with why, shown by `nodes` and logged as an event; until `nodes resume`.

        Nothing running on them is touched. The scheduler's passes leave drained nodes out (docs/scheduler.md); it
        does not run jobs on a cluster yet, so today the flag is for the people and scripts that read it.
        """
        _set(ctx, target, True, reason, output)

    @nodes_app.command("resume", short_help="Clear the drained flag: the nodes are back in service.")
    def resume(
        ctx: typer.Context,
        target: str = context.REQUIRED_TARGET_ARG,
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Clear the drained flag: the nodes are back in service (logged as an event)."""
        _set(ctx, target, False, None, output)
