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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION, FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.price import price_cell
from factoryctl.cli.render import Column, OutputFormat, fold, limit_watts

if TYPE_CHECKING:
    from collections.abc import Collection

    from factoryctl.errors import NodeError
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.power.held_sessions import HeldSessions
    from factoryctl.power.limits import LimitChange
    from factoryctl.power.policy_apply import PolicyInputs
    from factoryctl.telemetry.poll import PollResult

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


@dataclass
class Planned:
    """What `plan` read and planned: the inputs, nodes, rows, failed nodes and GPUs asked; the sessions kept.

    `held`: with `plan(hold=True)` (`power apply`), the sessions that read the nodes, kept for their change, and
    `kept` the nodes they hold; the caller closes them (`close_held`).
    """

    inputs: PolicyInputs
    nodes: list[NodeSpec]
    rows: list[dict[str, Any]]
    errors: list[NodeError]
    gpus: list[int] | None
    held: HeldSessions | None = None
    kept: list[str] = field(default_factory=list)


def plan(ctx: typer.Context, command: str, target: str, timeout: float, fanout: int, hold: bool = False) -> Planned:
    """Read the addressed nodes' GPUs (read-only) and plan each; with `hold`, keep the sessions that read them.

    The read is every listing's (`asked`: a live controller's store, else each node); with `hold`, no live
    controller and no GPUs named, `read_held`: a node off its plan is changed over the session that read it, one
    login, not two.
    """
    from factoryctl.config import parse_gpu_target
    from factoryctl.power.limit_checks import check_gpus
    from factoryctl.power.policy_apply import plan_rows
    from factoryctl.telemetry.poll import check_agent_cache

    inputs = _inputs(ctx, command)
    node_part, gpus = parse_gpu_target(target)
    nodes = inputs.config.resolve_target(node_part)
    check_agent_cache(nodes)
    planned = Planned(inputs, nodes, [], [], gpus)
    try:
        polled = _read(planned, timeout, fanout, context.global_options(ctx)[1], hold)
        check_gpus(polled.samples, gpus)  # `n01/7` on a node of 2 GPUs is refused, as `power set` refuses it
        planned.rows, planned.errors = plan_rows(inputs, polled.samples, gpus), list(polled.errors)
    except BaseException:
        close_held(planned)
        raise
    return planned


def _read(planned: Planned, timeout: float, fanout: int, quiet: bool, hold: bool) -> PollResult:
    """The nodes' samples, with a progress line on a terminal; with `hold` and no live controller, kept open."""
    from factoryctl.cli.listing import asked
    from factoryctl.cli.progress import replay_progress
    from factoryctl.power.held_sessions import HeldSessions
    from factoryctl.power.policy_apply import read_held
    from factoryctl.telemetry.latest import read_live

    config, nodes = planned.inputs.config, planned.nodes
    # GPUs named (`n01/0-3`): `apply_limit` reads the nodes again for its check, holding its own sessions
    if not hold or planned.gpus is not None or read_live(config, nodes, unknown=[]) is not None:
        return asked(config, nodes, timeout, fanout, quiet)
    planned.held = HeldSessions(config, timeout)
    with replay_progress("asking the nodes", quiet, unit="nodes done") as line:
        polled, planned.kept = read_held(planned.held, nodes, fanout, line)
    return polled


def close_held(planned: Planned, nodes: Collection[str] | None = None) -> BaseException | None:
    """Close the sessions `plan` kept (of `nodes`, else all, in parallel); the interrupt that came meanwhile.

    Returned, not raised: after a change, the listing of what changed is said first.
    """
    from factoryctl.transport.fanout import fan_out

    held = planned.held
    if held is None:
        return None
    try:
        if nodes is None:
            held.close_all()
        else:
            chosen = [node for node in planned.nodes if node.name in nodes and node.name in planned.kept]
            fan_out(chosen, held.release, max(len(chosen), 1))
    except BaseException as stop:
        if isinstance(stop, Exception):
            raise
        return stop
    return None


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

    planned = plan(ctx, "power plan", target, timeout, fanout)
    table = output is OutputFormat.table
    items = folded(planned.rows) if table else shown_rows(planned.rows)
    columns = FOLDED_COLUMNS if table else PLAN_COLUMNS
    return show_listing(lambda: (items, planned.errors), columns, output, no_header)


def _apply_command(
    ctx: typer.Context, target: str, why: str | None, options: tuple[OutputFormat, bool, float, int]
) -> int:
    """Plan every addressed GPU and set the nodes off their plan, each over the session that read it where kept.

    A node whose GPUs are all at plan is not asked again (`split_at_plan`): its GPUs are listed as unchanged.
    """
    from factoryctl.cli.power_limits import Rerun, refused_status, run_request, show_outcome
    from factoryctl.power.limit_checks import LimitsRefused
    from factoryctl.power.limits import check_audit_ready
    from factoryctl.power.policy_apply import apply_groups, audit_reason, limit_groups, record_course, split_at_plan

    output, no_header, timeout, fanout = options
    planned = plan(ctx, "power apply", target, timeout, fanout, hold=True)
    inputs = planned.inputs
    to_set, at_plan = split_at_plan(planned.rows)
    groups = limit_groups(to_set, planned.nodes, planned.gpus)
    quiet = context.global_options(ctx)[1]

    def request(told: Any) -> tuple[list[LimitChange], list[NodeError]]:  # noqa: ANN401 - a LimitProgress
        stopped = close_held(planned, {change.node for change in at_plan})  # before the changes open any session
        if stopped is not None:
            raise stopped
        if at_plan and not groups:
            check_audit_ready(inputs.config, told)  # as a run that sets GPUs checks the store first
        reason_of, limits = (lambda row: audit_reason(inputs, row, why)), (timeout, fanout, told)
        return apply_groups(inputs, groups, reason_of, limits, (at_plan, planned.errors), planned.held)

    try:
        applied = run_request(request, quiet)
    except LimitsRefused as refused:
        close_held(planned)
        return refused_status(refused)
    closing = close_held(planned)  # the sessions of nodes a stop left unasked
    applied.stopped = applied.stopped or closing
    record_course(inputs, planned.rows)
    order = {node.name: i for i, node in enumerate(planned.nodes)}
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
