"""`factoryctl power plan / apply / status`: the policy factory.yaml names, applied to every GPU by the price now.

Operators run `power apply` from cron every price interval instead of a tariff spreadsheet and `nvidia-smi -pl`.
Each run reads the nodes' GPUs, replays the policy from when it started applying up to now for each GPU range met
(policy_course.py: the same engine and visibility of prices as `power simulate`), and sets each GPU to its action's
limit through `power set`'s own path (`apply_limit`, clamped, audited), so a GPU already at its plan is no change
and no audit entry: a run every few minutes is idempotent. `plan` shows the same without changing anything, and
`status` says where the policy stands without asking a node. When the policy started lives in the state directory
(policy_state.py); only `apply` writes it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION, FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.price import price_cell
from factoryctl.cli.render import Column, OutputFormat, fold, limit_watts

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.errors import NodeError
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.model.power import GpuPowerRange, PricePoint
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.power.curve import PowerCurve
    from factoryctl.power.limits import LimitChange
    from factoryctl.power.policy.config import Policy
    from factoryctl.power.policy_course import Course
    from factoryctl.power.policy_state import Started

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
NO_POLICY_HINT = (
    "set power.policy in factory.yaml to a policy file (docs/power.md, Policies); try it first with"
    " `factoryctl power simulate --policy FILE`."
)


@dataclass
class Inputs:
    """What every command reads before it asks a node: the config, the policy file, the curve and the prices."""

    config: FactoryConfig
    policy_path: Path
    policy_text: str
    policy_sha256: str
    curve: PowerCurve
    curve_id: str
    points: list[PricePoint]
    offset_s: int
    visibility: str
    started: Started | None
    start_s: int
    now_s: int
    quiet: bool = False
    courses: dict[GpuPowerRange, tuple[Policy, Course]] = field(default_factory=dict)

    @property
    def same_course(self) -> bool:
        """Whether the recorded start is of this policy and curve (else the course starts now)."""
        return self.started is not None and self.started.same_course(self.policy_sha256, self.curve_id)

    def course(self, gpu: GpuPowerRange) -> tuple[Policy, Course]:
        """The policy as parsed for a GPU of this range (its `_pct` and `_w` keys need it), and its course.

        Resumed from the range's checkpoint when it holds; a progress line on a terminal while it replays.
        """
        if gpu not in self.courses:
            from factoryctl.cli.power import parse_policy_file
            from factoryctl.cli.progress import replay_progress
            from factoryctl.power.policy_course import course

            policy = parse_policy_file(self.policy_path, gpu, None, self.policy_text)
            where = str(self.policy_path)
            kept = self.started.checkpoint(gpu) if self.started is not None and self.same_course else None
            with replay_progress(
                f"replaying {policy.kind} since {self._since()}", self.quiet, unit="intervals"
            ) as line:
                replayed = course(
                    self.points,
                    policy,
                    self.curve,
                    gpu,
                    self.visibility,
                    self.start_s,
                    self.now_s,
                    self.offset_s,
                    where,
                    kept,
                    line,
                )
            self.courses[gpu] = (policy, replayed)
        return self.courses[gpu]

    def _since(self) -> str:
        from factoryctl.model.power import iso_utc_seconds

        return iso_utc_seconds(self.start_s)


def _inputs(ctx: typer.Context, command: str) -> Inputs:
    """Read factory.yaml's power settings, the policy file, the curve and the prices; refuse what is missing."""
    from factoryctl.config_schema import config_dir
    from factoryctl.errors import ConfigError
    from factoryctl.power.policy_state import curve_identity, policy_sha256, read_started
    from factoryctl.textfile import read_utf8

    config = context.load(ctx)
    power = config.settings.power
    if power.policy is None:
        raise ConfigError(f"{config.path} sets no power.policy, so {command} has no policy to apply.", NO_POLICY_HINT)
    if power.price_source is None:
        raise ConfigError(
            f"{config.path} sets no power.price_source, so {command} has no prices to apply the policy on.",
            "set power.price_source (and power.prices) in factory.yaml (docs/power.md, Price-source plugins).",
        )
    base = config_dir(config.path)
    policy_path = Path(from_dir(power.policy, base)).expanduser()
    text = read_utf8(policy_path, "policy file", "check power.policy in factory.yaml.")
    curve = _curve(power.curve, power.curve_gpu, power.curve_workload, base)
    points, offset = _prices(ctx, command)
    now_s = int(time.time())
    started = read_started(config.state_dir)
    sha, curve_id = policy_sha256(text.encode()), curve_identity(curve)
    same = started is not None and started.same_course(sha, curve_id)
    start_s = started.started_at_s if started is not None and same else now_s
    visibility, quiet = power.price_visibility, context.global_options(ctx)[1]
    return Inputs(
        config, policy_path, text, sha, curve, curve_id, points, offset, visibility, started, start_s, now_s, quiet
    )


def _curve(written: str | None, gpu: str | None, workload: str | None, base: Path | None) -> PowerCurve:
    """factory.yaml's `power.curve` (a refusal of it is a config error), else the built-in A40 curve."""
    from factoryctl.errors import ConfigError, UsageError
    from factoryctl.power.curve_file import builtin_curve, load_curve

    if written is None or gpu is None or workload is None:
        return builtin_curve()
    path = Path(from_dir(written, base)).expanduser()
    try:
        return load_curve(path, gpu, workload)[0]
    except UsageError as refused:
        raise ConfigError(
            f"power.curve: {refused.message}", refused.hint or "check power.curve in factory.yaml."
        ) from None


def from_dir(written: str, base: Path | None) -> str:
    """A path of factory.yaml taken from its directory, as `power.prices` is."""
    from factoryctl.config_schema import from_config_dir

    return from_config_dir(written, base) or written


def _prices(ctx: typer.Context, command: str) -> tuple[list[PricePoint], int]:
    """The configured source's prices and its market clock; a source with none is refused as `price show` does."""
    from factoryctl.cli.price import open_prices, refuse_empty_source
    from factoryctl.power.sources import market_offset_s

    source, where, _ = open_prices(ctx, None)
    points = list(source.fetch())
    if not points:
        refuse_empty_source(where, f"for {command}")
    return points, market_offset_s(source)


def _range(gpu: Any) -> GpuPowerRange | None:  # noqa: ANN401 - a GpuSample
    """A GPU's power-limit range, when it reports one (a GPU that cannot set a limit has none)."""
    from factoryctl.model.power import GpuPowerRange

    low, high, default = gpu.power_limit_min_w, gpu.power_limit_max_w, gpu.power_limit_default_w
    if low is None or high is None or not high > 0:
        return None
    return GpuPowerRange(low, high, high if default is None else default)


def _rows(inputs: Inputs, samples: list[NodeSample], gpus: list[int] | None) -> list[dict[str, Any]]:
    """One row per addressed GPU with a range: its limit now and its plan, by the course of its range."""
    from factoryctl.model.power import iso_utc_seconds
    from factoryctl.power.policy_course import planned_watts

    rows = []
    for sample in samples:
        for gpu in sample.gpus:
            rng = _range(gpu)
            if rng is None or (gpus is not None and gpu.index not in gpus):
                continue
            policy, course = inputs.course(rng)
            action = course.action
            rows.append(
                {
                    "node": sample.node,
                    "index": gpu.index,
                    "power_limit_w": gpu.power_limit_w,
                    "plan_w": planned_watts(action, rng),
                    "clamped": action.clamped,
                    "reason": action.reason,
                    "price_per_mwh": action.price_used_per_mwh,
                    "interval_start": iso_utc_seconds(course.interval_start_s),
                    "policy": policy.kind,
                    "_range": rng,
                }
            )
    return rows


def _plan(
    ctx: typer.Context, command: str, target: str, timeout: float, fanout: int
) -> tuple[Inputs, list[NodeSpec], list[dict[str, Any]], list[NodeError], list[int] | None]:
    """Read the addressed nodes' GPUs (read-only) and plan each: the inputs, nodes, rows, failed nodes, GPUs asked."""
    from factoryctl.cli.listing import asked
    from factoryctl.config import parse_gpu_target
    from factoryctl.power.limit_checks import check_gpus
    from factoryctl.telemetry.poll import check_agent_cache

    inputs = _inputs(ctx, command)
    node_part, gpus = parse_gpu_target(target)
    nodes = inputs.config.resolve_target(node_part)
    check_agent_cache(nodes)
    polled = asked(inputs.config, nodes, timeout, fanout, context.global_options(ctx)[1])
    check_gpus(polled.samples, gpus)  # `n01/7` on a node of 2 GPUs is refused, as `power set` refuses it
    return inputs, nodes, _rows(inputs, polled.samples, gpus), list(polled.errors), gpus


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


def _shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def _plan_command(
    ctx: typer.Context, target: str, output: OutputFormat, no_header: bool, timeout: float, fanout: int
) -> int:
    from factoryctl.cli.listing import show_listing

    _, _, rows, errors, _ = _plan(ctx, "power plan", target, timeout, fanout)
    table = output is OutputFormat.table
    items = folded(rows) if table else _shown_rows(rows)
    return show_listing(lambda: (items, errors), FOLDED_COLUMNS if table else PLAN_COLUMNS, output, no_header)


def _audit_reason(inputs: Inputs, row: dict[str, Any], why: str | None) -> str:
    """What the audit log says of a change: the policy, its rule and the price, then the user's --reason.

    A limit the policy asked outside the GPU's range was clamped before it was asked of the node, so the entry's
    own `clamped` (the node's clamp) is false: the reason says it (DESIGN: a policy's clamp is in the audit log).
    """
    from factoryctl.cli.price import price_cell

    price = row["price_per_mwh"]
    at = "no known price" if price is None else f"{price_cell(price)}/MWh"
    said = (
        f"power apply: {row['policy']} policy {inputs.policy_path}: {row['reason']} at {at} ({row['interval_start']})"
    )
    if row["clamped"]:
        said += ", clamped to the GPU's range"
    return f"{said}; {why}" if why else said


def _apply_command(
    ctx: typer.Context, target: str, why: str | None, options: tuple[OutputFormat, bool, float, int]
) -> int:
    from factoryctl.cli.power_limits import Rerun, refused_status, run_request, show_outcome
    from factoryctl.power.limit_checks import LimitsRefused

    output, no_header, timeout, fanout = options
    inputs, nodes, rows, errors, gpus = _plan(ctx, "power apply", target, timeout, fanout)
    groups = _groups(rows, nodes, gpus)
    quiet = context.global_options(ctx)[1]

    def request(told: Any) -> tuple[list[LimitChange], list[NodeError]]:  # noqa: ANN401 - a LimitProgress
        return _apply_groups(inputs, groups, why, timeout, fanout, told, errors)

    try:
        applied = run_request(request, quiet)
    except LimitsRefused as refused:
        return refused_status(refused)
    _record(inputs, rows)
    order = {node.name: i for i, node in enumerate(nodes)}
    applied.changes.sort(key=lambda change: (order.get(change.node, 0), change.gpu))
    given_timeout = None if timeout == context.TIMEOUT_OPTION.default else timeout
    return show_outcome(applied, Rerun(None, False, why, given_timeout, "apply"), output, no_header, quiet)


Group = tuple[dict[str, Any], list["NodeSpec"], list[int] | None]


def _groups(rows: list[dict[str, Any]], nodes: list[NodeSpec], gpus: list[int] | None) -> dict[tuple[Any, ...], Group]:
    """The GPUs to set alike: per range (one plan), the nodes whose GPUs of that range are the same (all, or a list)."""
    by_node: dict[str, dict[GpuPowerRange, list[dict[str, Any]]]] = {}
    for row in rows:
        by_node.setdefault(row["node"], {}).setdefault(row["_range"], []).append(row)
    spec = {node.name: node for node in nodes}
    groups: dict[tuple[Any, ...], Group] = {}
    for node, ranges in by_node.items():
        whole = len(ranges) == 1 and gpus is None
        for rng, of_range in ranges.items():
            indexes = None if whole else [row["index"] for row in of_range]
            key = (rng, None if indexes is None else tuple(indexes))
            groups.setdefault(key, (of_range[0], [], indexes))[1].append(spec[node])
    return groups


def _apply_groups(
    inputs: Inputs,
    groups: dict[tuple[Any, ...], Group],
    why: str | None,
    timeout: float,
    fanout: int,
    told: Any,  # noqa: ANN401 - a LimitProgress
    read_errors: list[NodeError],
) -> tuple[list[LimitChange], list[NodeError]]:
    """Set each group to its plan through `apply_limit` (clamped, audited); a stop brings what every group did.

    A failure that carries what its request did (`LimitsInterrupted`, `LimitsNotRecorded`) is given the earlier
    groups' too, so the listing says every GPU that changed, not only the last group's.
    """
    from factoryctl.power.limits import LimitsInterrupted, LimitsNotRecorded, apply_limit

    changes: list[LimitChange] = []
    errors = list(read_errors)
    for row, nodes, indexes in groups.values():
        reason = _audit_reason(inputs, row, why)
        try:
            done, failed = apply_limit(
                inputs.config, nodes, indexes, row["plan_w"], True, timeout, reason, fanout, told
            )
        except (LimitsInterrupted, LimitsNotRecorded) as stop:
            stop.changes[:0], stop.errors[:0] = changes, errors
            raise
        changes += done
        errors += failed
    return changes, errors


def _record(inputs: Inputs, rows: list[dict[str, Any]]) -> None:
    """Write when the course started (now, for a new policy or curve), the ranges met and their checkpoints.

    A range not met this run keeps its checkpoint while the course is the same one; a new course keeps none.
    """
    from factoryctl.power.policy_state import Started, write_started

    if not rows:  # no GPU was planned (every node failed): no course started
        return
    known = inputs.started.ranges if inputs.started is not None else ()
    ranges = tuple(dict.fromkeys([*known, *(row["_range"] for row in rows)]))
    kept = dict(inputs.started.checkpoints) if inputs.started is not None and inputs.same_course else {}
    for gpu, (_, course) in inputs.courses.items():
        if course.checkpoint is None:
            kept.pop(gpu, None)
        else:
            kept[gpu] = course.checkpoint
    checkpoints = tuple((gpu, kept[gpu]) for gpu in ranges if gpu in kept)
    started = Started(inputs.start_s, inputs.policy_sha256, inputs.curve_id, ranges, checkpoints)
    if started != inputs.started:
        write_started(inputs.config.state_dir, started)


def register(power_app: typer.Typer) -> None:
    """Add `plan`, `apply` and `status` to the `power` noun."""
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
