"""`factoryctl power diff`: the GPUs whose enforced limit is not the power policy's plan now, for eyes and scripts.

`power plan`'s rows (power_policy.py plans them) kept to those `power apply` would change, so an operator sees what
a run would do and a monitoring script gets `--exit-code` (1 when any GPU is off its plan, as `git diff`). Split from
power_policy.py to keep each command's module small; `power_policy.register` adds it, between `apply` and `status`.
"""

from __future__ import annotations

import sys

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.power_policy import FOLDED_COLUMNS, PLAN_COLUMNS, folded, plan, shown_rows
from factoryctl.cli.render import OutputFormat


def _diff_command(
    ctx: typer.Context, target: str, exit_code: bool, output: tuple[OutputFormat, bool], limits: tuple[float, int]
) -> int:
    """`power plan`'s rows that would change, a count on stderr; 1 with `--exit-code` when any differ.

    A node that could not be read is said as every listing says it, and its exit status wins over `--exit-code`'s
    (its GPUs may differ too: nobody knows).
    """
    from factoryctl.cli.listing import show_listing
    from factoryctl.power.policy_apply import differs

    timeout, fanout = limits
    planned = plan(ctx, "power diff", target, timeout, fanout)
    rows = planned.rows
    differing = [row for row in rows if differs(row)]
    table = output[0] is OutputFormat.table
    items = folded(differing) if table else shown_rows(differing)
    status = show_listing(lambda: (items, planned.errors), FOLDED_COLUMNS if table else PLAN_COLUMNS, *output)
    if not context.global_options(ctx)[1]:
        sys.stderr.write(f"{len(differing)} of {counted_gpus(len(rows))} {_differ(len(differing))} from the plan\n")
    if status == 0 and exit_code and differing:
        return 1
    return status


def counted_gpus(count: int) -> str:
    """`16 GPUs`, `1 GPU`."""
    return f"{count} GPU{'' if count == 1 else 's'}"


def _differ(count: int) -> str:
    """The verb of `N of M GPUs ... from the plan`: `1 of 16 GPUs differs`, `3 of 16 GPUs differ`."""
    return "differs" if count == 1 else "differ"


def register(power_app: typer.Typer) -> None:
    """Add `diff` to the `power` noun."""

    @power_app.command("diff", short_help="List the GPUs whose limit is not the power policy's plan now.")
    def diff_command(
        ctx: typer.Context,
        target: str = context.GPU_TARGET_ARG,
        exit_code: bool = typer.Option(
            False, "--exit-code", help="Exit 1 when any GPU differs from the plan (as `git diff --exit-code`)."
        ),
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """The GPUs whose enforced limit differs from the policy's plan for now (`power plan`'s rows that would change).

        A count goes to stderr (`3 of 16 GPUs differ from the plan`) unless -q. Exit 0, or with --exit-code 1 when
        any GPU differs; a node that could not be read exits as in every listing (4, 124, 1).
        """
        raise typer.Exit(_diff_command(ctx, target, exit_code, (output, no_header), (timeout, fanout)))
