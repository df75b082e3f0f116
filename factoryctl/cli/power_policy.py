"""`factoryctl power plan / apply / diff / status`: the policy factory.yaml names, applied to every GPU by the price now.

Operators run `power apply` from cron every price interval instead of a tariff spreadsheet and `nvidia-smi -pl`.
Each run reads the nodes' GPUs, replays the policy from when it started applying up to now for each GPU range met
(policy_course.py: the same engine and visibility of prices as `power simulate`), and sets each GPU to its action's
limit through `power set`'s own path (`apply_limit`, clamped, audited), so a GPU already at its plan is no change
and no audit entry: a run every few minutes is idempotent. `plan` shows the same without changing anything,
`diff` (power_diff.py) lists only the GPUs whose limit is not their plan, and `status` says where the
policy stands without asking a node. When the policy started lives in the state directory (policy_state.py); `apply`
and the controller's power loop write it. The policy's core (inputs, plan, groups, apply, record) is
power/policy_apply.py, which the controller's loop shares: this module reads the typer context and prints.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION, FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.price import price_cell
from factoryctl.cli.render import Column, OutputFormat, fold, limit_watts

if TYPE_CHECKING:
    from factoryctl.errors import NodeError
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.power.limits import LimitChange
    from factoryctl.power.policy_apply import PolicyInputs

PLAN_COLUMNS = (
    Column("node", "NODE"),
    Column("index", "GPU"),
    Column("power_limit_w", "NOW W", show=limit_watts),
    Column("plan_w", "PLAN W", show=limit_watts),
    Column("clamped", "CLAMPED"),
    Column("reason", "REASON"),
    Column("price_per_mwh", "PRICE/MWH", show=price_cell),
    Column("interval_start", "INTERVAL (UTC)"),
    Column("policy", "POLICY"),
)
#: The table's columns: nodes whose GPUs have the same plan share a row, as `power set` folds its changes.
FOLDED_COLUMNS = (Column("nodes", "NODES"), Column("gpus", "GPUS"), *PLAN_COLUMNS[2:7])


def _inputs(ctx: typer.Context, command: str) -> PolicyInputs:
    """Read factory.yaml's power settings, the policy file, the curve and the prices; refuse what is missing.

    The policy is parsed by `cli.power.parse_policy_file` (looked up at each call), and a replay shows its progress
    line on a terminal unless -q.
    """
    from factoryctl.cli import power
    from factoryctl.cli.price import say_warnings
    from factoryctl.cli.progress import replay_progress
    from factoryctl.power.configured_prices import configured_prices
    from factoryctl.power.policy_apply import read_inputs

    config = context.load(ctx)
    quiet = context.global_options(ctx)[1]
    inputs = read_inputs(config, command, lambda: configured_prices(config, f"for {command}", say_warnings))
    inputs.parse = lambda path, gpu, loss, text: power.parse_policy_file(path, gpu, loss, text)
    inputs.progress = lambda label: replay_progress(label, quiet, unit="intervals")
    return inputs


def plan(
    ctx: typer.Context, command: str, target: str, timeout: float, fanout: int
) -> tuple[PolicyInputs, list[NodeSpec], list[dict[str, Any]], list[NodeError], list[int] | None]:
    """Read the addressed nodes' GPUs (read-only) and plan each: the inputs, nodes, rows, failed nodes, GPUs asked."""
    from factoryctl.cli.listing import asked
    from factoryctl.config import parse_gpu_target
    from factoryctl.power.limit_checks import check_gpus
    from factoryctl.power.policy_apply import plan_rows
    from factoryctl.telemetry.poll import check_agent_cache

    inputs = _inputs(ctx, command)
    node_part, gpus = parse_gpu_target(target)
    nodes = inputs.config.resolve_target(node_part)
    check_agent_cache(nodes)
    polled = asked(inputs.config, nodes, timeout, fanout, context.global_options(ctx)[1])
    check_gpus(polled.samples, gpus)  # `n01/7` on a node of 2 GPUs is refused, as `power set` refuses it
    return inputs, nodes, plan_rows(inputs, polled.samples, gpus), list(polled.errors), gpus


def folded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes whose GPUs have the same plan share a row (`n[01-20] (20)`, GPUs `0-7`), in the order they come."""
    from ClusterShell.RangeSet import RangeSet

    keys = [column.key for column in FOLDED_COLUMNS[2:]]
    by_node: dict[str, dict[tuple[Any, ...], list[int]]] = {}
    for row in rows:
        by_node.setdefault(row["node"], {}).setdefault(tuple(row[k] for k in keys), []).append(row["index"])
    grouped: dict[tuple[Any, ...], list[str]] = {}
    for node, outcomes in by_node.items():
        for outcome, indexes in outcomes.items():
            grouped.setdefault((str(RangeSet.fromlist([str(i) for i in indexes])), *outcome), []).append(node)
    return [
        {"nodes": fold(nodes) if len(nodes) == 1 else f"{fold(nodes)} ({len(nodes)})", "gpus": key[0]}
        | dict(zip(keys, key[1:], strict=True))
        for key, nodes in grouped.items()
    ]


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as `-o json/yaml/wide` show them: without the keys kept for applying (`_range`)."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def _plan_command(
    ctx: typer.Context, target: str, output: OutputFormat, no_header: bool, timeout: float, fanout: int
) -> int:
    from factoryctl.cli.listing import show_listing

    _, _, rows, errors, _ = plan(ctx, "power plan", target, timeout, fanout)
    table = output is OutputFormat.table
    items = folded(rows) if table else shown_rows(rows)
    return show_listing(lambda: (items, errors), FOLDED_COLUMNS if table else PLAN_COLUMNS, output, no_header)


def _apply_command(
    ctx: typer.Context, target: str, why: str | None, options: tuple[OutputFormat, bool, float, int]
) -> int:
    from factoryctl.cli.power_limits import Rerun, refused_status, run_request, show_outcome
    from factoryctl.power.limit_checks import LimitsRefused
    from factoryctl.power.policy_apply import apply_groups, audit_reason, limit_groups, record_course

    output, no_header, timeout, fanout = options
    inputs, nodes, rows, errors, gpus = plan(ctx, "power apply", target, timeout, fanout)
    groups = limit_groups(rows, nodes, gpus)
    quiet = context.global_options(ctx)[1]

    def request(told: Any) -> tuple[list[LimitChange], list[NodeError]]:  # noqa: ANN401 - a LimitProgress
        return apply_groups(inputs, groups, lambda row: audit_reason(inputs, row, why), (timeout, fanout, told), errors)

    try:
        applied = run_request(request, quiet)
    except LimitsRefused as refused:
        return refused_status(refused)
    record_course(inputs, rows)
    order = {node.name: i for i, node in enumerate(nodes)}
    applied.changes.sort(key=lambda change: (order.get(change.node, 0), change.gpu))
    given_timeout = None if timeout == context.TIMEOUT_OPTION.default else timeout
    return show_outcome(applied, Rerun(None, False, why, given_timeout, "apply"), output, no_header, quiet)


def register(power_app: typer.Typer) -> None:
    """Add `plan`, `apply`, `diff` (power_diff.py) and `status` to the `power` noun."""
    from factoryctl.cli import power_diff
    from factoryctl.cli.power_status import status_document, status_text

    @power_app.command("plan", short_help="Show the power policy's limit for each GPU now; changes nothing.")
    def plan_command(
        ctx: typer.Context,
        target: str = context.GPU_TARGET_ARG,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """Show the limit factory.yaml's power.policy sets on each GPU for the price interval now; changes nothing."""
        raise typer.Exit(_plan_command(ctx, target, output, no_header, timeout, fanout))

    @power_app.command("apply", short_help="Set each GPU to the power policy's limit for now (audited).")
    def apply_command(
        ctx: typer.Context,
        target: str = context.GPU_TARGET_ARG,
        reason: str | None = context.reason_option("Why, added to the audit log's entry (after the policy's rule)."),
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """Set each GPU to the limit power.policy gives for the price interval now; GPUs already there are no change."""
        why = (reason or "").strip() or None
        raise typer.Exit(_apply_command(ctx, target, why, (output, no_header, timeout, fanout)))

    power_diff.register(power_app)  # between apply and status, in help as before

    @power_app.command("status", short_help="Say where the power policy stands now; asks no node.")
    def status_command(ctx: typer.Context, output: OutputFormat = DOCUMENT_OUTPUT_OPTION) -> None:
        """The applied policy, when it started, the price now and each GPU range's action; no node is contacted."""
        from factoryctl.cli.render import emit_document

        document = status_document(_inputs(ctx, "power status"))
        emit_document(document, output, status_text)
        if not document["ranges"] and not context.global_options(ctx)[1]:
            sys.stderr.write(
                "factoryctl: note: no GPU range is known before the first `power apply`; `factoryctl power plan`"
                " shows each GPU's plan.\n"
            )
