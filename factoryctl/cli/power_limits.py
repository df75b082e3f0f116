"""`factoryctl power set / reset`: explicit GPU power limits, refused out of range (exit 2), audited.

A node that cannot be reached is reported (exit 4, or the class of its failure) and the others are still set, as
every fan-out command does; the all-or-nothing range rule applies to the GPUs of the nodes that answered.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from factoryctl.cli import context
from factoryctl.cli.render import NO_HEADER_OPTION, OUTPUT_OPTION, Column, OutputFormat

CHANGE_COLUMNS = (
    Column("node", "NODE"),
    Column("gpu", "GPU"),
    Column("before_w", "BEFORE W"),
    Column("enforced_w", "ENFORCED W"),
    Column("clamped", "CLAMPED"),
)
TARGET_HELP = "Node set, @group or all; `node/0-3` picks GPUs."
GPU_TARGET_ARG = typer.Argument(..., help=TARGET_HELP, autocompletion=context.complete_target)


def _run(
    ctx: typer.Context,
    target: str,
    watts: float | None,
    clamp: bool,
    output: OutputFormat,
    no_header: bool,
    timeout: float,
) -> int:
    from dataclasses import asdict

    from factoryctl.cli.listing import show_listing
    from factoryctl.config import parse_gpu_target
    from factoryctl.power.limits import apply_limit

    config = context.load(ctx)
    node_part, gpus = parse_gpu_target(target)
    nodes = config.resolve_target(node_part)

    changed: list[int] = []

    def produce() -> tuple[list[dict[str, Any]], list[Any]]:
        changes, errors = apply_limit(config, nodes, gpus, watts, clamp, timeout)
        changed.append(len(changes))
        return [asdict(c) for c in changes], errors

    status = show_listing(produce, CHANGE_COLUMNS, output, no_header)
    if status and not sum(changed):
        # the nodes that failed were left alone, and none of the others changed either
        sys.stderr.write("factoryctl: no power limit was changed.\n")
    return status


def register(power_app: typer.Typer) -> None:
    """Add `set` and `reset` to the `power` noun."""

    @power_app.command("set")
    def set_command(
        ctx: typer.Context,
        target: str = GPU_TARGET_ARG,
        watts: float = typer.Option(..., "--watts", help="Power limit per GPU, in watts."),
        clamp: bool = typer.Option(False, "--clamp", help="Clamp to each GPU's range instead of refusing."),
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
    ) -> None:
        """Set GPU power limits, like `nvidia-smi -pl` on every node; out of range is refused (exit 2).

        A value outside any reachable GPU's range changes nothing; an unreachable node is reported and skipped
        (exit 4), and the reachable nodes are set.
        """
        raise typer.Exit(_run(ctx, target, watts, clamp, output, no_header, timeout))

    @power_app.command("reset")
    def reset_command(
        ctx: typer.Context,
        target: str = GPU_TARGET_ARG,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
    ) -> None:
        """Reset GPU power limits to each GPU's default."""
        raise typer.Exit(_run(ctx, target, None, False, output, no_header, timeout))
