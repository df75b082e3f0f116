"""`factoryctl power report`: a past period's GPU energy, its cost and what the power policy did, per node, from the store.

The store-only reader of power/report.py, shown as a listing with a TOTAL row (`-o json`: a `total` object beside the
items). It asks no node, so it answers with the controller running or from cron-collected telemetry, and imports
neither paramiko nor pynvml. What is missing is said on stderr (a node without telemetry, intervals without a price)
and shown as `-` (null), never as 0. The window is `telemetry energy`'s (`time_window`), the prices `jobs show`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, iso_utc
from factoryctl.cli.telemetry import UNTIL_OPTION, window_text

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.power.report import NodeReport, PeriodReport


def _number(places: int) -> Callable[[Any], str]:
    """A cell of a number to `places` decimals, `-` for null."""
    return lambda v: "-" if v is None else f"{round(v, places) + 0.0:.{places}f}"  # + 0.0: no -0.00


REPORT_COLUMNS = (
    Column("node", "NODE"),
    Column("gpus", "GPUS"),
    Column("energy_kwh", "ENERGY kWh", show=_number(3)),
    Column("cost", "COST", show=_number(2)),
    Column("avg_power_w", "AVG W", wide_only=True, show=_number(0)),
    Column("paid_per_mwh", "PAID/MWh", show=_number(2)),
    Column("mean_price_per_mwh", "MEAN/MWh", show=_number(2)),
    Column("capped_pct", "CAPPED %", show=_number(1)),
    Column("limit_changes_policy", "BY POLICY"),
    Column("limit_changes_by_hand", "BY HAND"),
    Column("intervals_without_telemetry", "NO DATA", wide_only=True),
    Column("from", "FROM", wide_only=True),
    Column("to", "TO", wide_only=True),
)
#: The keys of a report item and of `total`, in order (the CSV header); docs/power.md defines each.
REPORT_FIELDS = tuple(column.key for column in REPORT_COLUMNS)


def register(power_app: typer.Typer) -> None:
    """Add `report` to the `power` app."""
    power_app.command("report", short_help="GPU energy, cost and capping per node over a past period.")(report)


def report(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    since: str = typer.Option("24h", "--since", help="How far back: a duration (24h, 7d) or an ISO-8601 time."),
    until: str | None = UNTIL_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """GPU energy and its cost per node over a past period, and what the power policy did, from the store.

    Per node: kWh, cost at the configured prices, the mean price paid against the period's mean, the share of
    GPU-time capped below the default limit, and the power-limit changes (the policy's, by hand).
    """
    import time

    from factoryctl.cli.telemetry import time_window

    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    start, end = time_window(since, until)
    end = _until_now(start, end, since, time.time())
    period, once = _read_period(ctx, config, names, (start, end))
    window = window_text(start, end, until)
    if once is not None and all(node.energy_kwh is None for node in period.nodes):
        _note_empty(ctx, target, window, once)
    _warn_missing(period, window)
    items = [_item(node, period) for node in period.nodes]
    _emit(items, _total(period), output, no_header)


def _read_period(
    ctx: typer.Context, config: FactoryConfig, names: list[str], window: tuple[float, float]
) -> tuple[PeriodReport, list[str] | None]:
    """The period's report, and the nodes without energy read once in it; before any store, an empty one and None."""
    from factoryctl.cli.nothing_stored import TELEMETRY_STORED_BY, note_no_store, open_if_stored, read_once
    from factoryctl.cli.progress import replay_progress
    from factoryctl.power.configured_prices import price_intervals
    from factoryctl.power.report import read_report, unread_report

    prices = price_intervals(config)
    store = open_if_stored(config)
    if store is None:  # nothing stored yet: the empty report, said as such
        note_no_store(ctx, config, "no GPU energy", TELEMETRY_STORED_BY)
        return unread_report(names, window, prices), None
    try:
        with replay_progress("reading the store", context.global_options(ctx)[1], unit="price intervals") as told:
            period = read_report(store, names, window, prices, told)
        return period, read_once(store, [node.node for node in period.nodes if node.energy_kwh is None], window)
    finally:
        store.close()


def _until_now(start: float, end: float, since: str, now: float) -> float:
    """The period's end, at most now: a report is of the past, and a period all in the future is a usage error."""
    if start >= now:
        from factoryctl.errors import UsageError

        raise UsageError(
            f"--since {since} is in the future: the period has no past to report on.",
            "give --since a time before now (e.g. --since 24h or --since 2026-11-01T00:00Z).",
        )
    return min(end, now)


def _note_empty(ctx: typer.Context, target: str, window: str, once: list[str]) -> None:
    """No node of the target has energy stored in the period: an empty report (exit 0), and where readings come from.

    `once`: the nodes read only once in it (energy needs two readings).
    """
    from factoryctl.cli.nothing_stored import ONCE_HINT, note, once_text

    if once:
        note(ctx, f"nothing to report: {once_text(once, window)}; {ONCE_HINT}.")
        return
    note(
        ctx,
        f"nothing to report: no GPU energy is stored for {'any node' if target == 'all' else target} {window}; the"
        " controller (`factoryctl controller run`) or `factoryctl telemetry collect` from cron stores readings, and"
        " `factoryctl telemetry energy --since 30d` shows which periods have some.",
    )


def _item(node: NodeReport, period: PeriodReport) -> dict[str, Any]:
    """One node's row (`REPORT_FIELDS`)."""
    return _row(node, node.node, node.gpus, node.energy_kwh, node.cost, period)


def _total(period: PeriodReport) -> dict[str, Any]:
    """The TOTAL row: sums over the nodes, the price paid over all priced MWh, the capped share of all GPU-time."""
    import math

    from factoryctl.power.report import NodeReport

    nodes = period.nodes
    read = [node for node in nodes if node.energy_kwh is not None]
    energy = round(math.fsum(node.energy_kwh or 0.0 for node in read), 10) if read else None  # no float noise
    costs = [node.cost for node in read]
    cost = None if not read or None in costs else round(math.fsum(c or 0.0 for c in costs), 6)
    summed = NodeReport(
        "TOTAL",
        priced_kwh=math.fsum(node.priced_kwh for node in read),
        gaps=sum(node.gaps for node in nodes),
        capped_s=sum(node.capped_s for node in nodes),
        gpu_s=sum(node.gpu_s for node in nodes),
        policy_changes=sum(node.policy_changes for node in nodes),
        hand_changes=sum(node.hand_changes for node in nodes),
        mean_price_per_mwh=period.mean_price_per_mwh,
    )
    return _row(summed, "TOTAL", sum(node.gpus for node in nodes), energy, cost, period)


def _row(
    node: NodeReport, name: str, gpus: int, energy: float | None, cost: float | None, period: PeriodReport
) -> dict[str, Any]:
    """A row of the report: `node`'s figures (a node's, or the TOTAL's sums), rounded past any float noise."""
    seconds = period.end - period.start
    return {
        "node": name,
        "gpus": gpus,
        "energy_kwh": energy,
        "cost": cost,
        "avg_power_w": None if energy is None else round(energy * 3_600_000 / seconds, 3),
        "paid_per_mwh": None if cost is None or node.priced_kwh <= 0 else round(cost / (node.priced_kwh / 1000), 6),
        "mean_price_per_mwh": None if node.mean_price_per_mwh is None else round(node.mean_price_per_mwh, 6),
        "capped_pct": round(100 * node.capped_s / node.gpu_s, 3) if node.gpu_s else None,
        "limit_changes_policy": node.policy_changes,
        "limit_changes_by_hand": node.hand_changes,
        "intervals_without_telemetry": node.gaps,
        "from": iso_utc(period.start),
        "to": iso_utc(period.end),
    }


def _warn_missing(period: PeriodReport, window: str) -> None:
    """Say on stderr what the numbers leave out: nodes without readings, intervals without telemetry or a price.

    Kept under -q, as `telemetry energy`'s: a nightly `-q power report -o json` summed by a script would otherwise
    read a node never collected as costing nothing.
    """
    from factoryctl.model.folding import fold_nodes

    unread = [node.node for node in period.nodes if node.energy_kwh is None]
    if unread:
        _warn(f"no stored energy reading for {fold_nodes(unread)} {window}: energy and cost unknown, not 0")
    some = [node.node for node in period.nodes if node.energy_kwh is not None and node.gpus_unread]
    if some:
        _warn(f"no stored energy reading for some GPUs of {fold_nodes(some)} {window}: energy sums the others only")
    short: dict[tuple[int, str], list[str]] = {}  # nodes by the intervals they lack: one line for each
    for node in period.nodes:
        if node.energy_kwh is not None and node.gaps and period.intervals:
            short.setdefault((node.gaps, _runs_text(node.gap_runs)), []).append(node.node)
    for (gaps, when), nodes in sorted(short.items()):
        whose = f"{fold_nodes(nodes)} ({len(nodes)} nodes) have" if len(nodes) > 1 else f"{nodes[0]} has"
        _warn(
            f"{whose} no telemetry for {gaps} of the period's {period.intervals} price intervals:"
            f" energy and cost count the others only (no telemetry {when})"
        )
    if period.no_cost is not None:
        first = f" (the first: {iso_utc(period.unpriced[0][0])})" if period.unpriced else ""
        _warn(f"no cost: {period.no_cost}{first}")


#: The runs of intervals without telemetry a warning names; the rest are counted.
_RUNS_NAMED = 3


def _runs_text(runs: list[tuple[float, float]]) -> str:
    """The runs of intervals without telemetry, for the warning: `from A to B, from C to D, ... and 2 more`."""
    named = ", ".join(f"from {iso_utc(lo)} to {iso_utc(hi)}" for lo, hi in runs[:_RUNS_NAMED])
    return f"{named} and {len(runs) - _RUNS_NAMED} more" if len(runs) > _RUNS_NAMED else named


def _warn(sentence: str) -> None:
    sys.stderr.write(f"factoryctl: warning: {sentence}.\n")


def _emit(items: list[dict[str, Any]], total: dict[str, Any], output: OutputFormat, no_header: bool) -> None:
    """The listing with its TOTAL: a last row of the table and the CSV, a `total` object in JSON and YAML."""
    from factoryctl.cli.render import dump_json, dump_yaml, emit, escaped_rows, listing_document, render_listing

    if output in (OutputFormat.json, OutputFormat.yaml):
        document = listing_document(escaped_rows(items, output), [])
        document["total"] = total
        emit((dump_json if output is OutputFormat.json else dump_yaml)(document))
        return
    emit(render_listing([*items, total], [], REPORT_COLUMNS, output, no_header, REPORT_FIELDS))
