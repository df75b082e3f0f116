"""`factoryctl telemetry collect --once / history / export / energy`: one sweep into the store, and reading it back.

Store-only commands (history, export) never touch a node, so they answer from the store in milliseconds and import
neither paramiko nor pynvml.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.render import (
    NO_HEADER_OPTION,
    OUTPUT_OPTION,
    Column,
    OutputFormat,
    checked_choice,
    emit,
    iso_utc,
    render_listing,
    stdout_takes_unicode,
)

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import Event, NodeState, Series
    from factoryctl.store.sqlite import Store

app = typer.Typer(no_args_is_help=True)

SINCE_OPTION = typer.Option("1h", "--since", help="How far back: a duration (90s, 15m, 1h, 7d) or an ISO-8601 time.")
UNTIL_OPTION = typer.Option(None, "--until", help="End of the window (default now): a duration ago or an ISO time.")
SPARK = "▁▂▃▄▅▆▇█"
#: The same ramp for a stdout that cannot write block characters (an ASCII or latin-1 locale).
ASCII_SPARK = "_.-:=+*#"


def parse_when(text: str, now: float, option: str = "--since") -> float:
    """Unix time from a duration ago (`1h`) or an ISO-8601 timestamp (`2026-11-22T01:00:00Z`) given to `option`."""
    from factoryctl.config_schema import parse_duration
    from factoryctl.errors import UsageError

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} `{text}` is neither a duration nor an ISO-8601 time.",
            f"write e.g. {option} 1h or {option} 2026-11-22T01:00Z.",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def time_window(since: str, until: str | None) -> tuple[float, float]:
    """(start, end) in unix seconds for `--since` / `--until` (end: now, inclusive)."""
    import time

    now = time.time()
    start, end = parse_when(since, now), parse_when(until, now, "--until") if until else now + 1
    if end <= start:
        from factoryctl.errors import UsageError

        raise UsageError(
            f"--until {until} is not after --since {since}: the window would be empty.",
            "give --until a later time than --since (or leave it out: until now).",
        )
    return start, end


def open_history(config: FactoryConfig) -> Store:
    """The store, read-only (history never writes)."""
    from factoryctl.store.sqlite import Store

    return Store(config.store_path, readonly=True)


# ---------------------------------------------------------------------------------------------------- collect


COLLECT_COLUMNS = (
    Column("node", "NODE"),
    Column("state", "STATE"),
    Column("gpus", "GPUS"),
    Column("power_w", "POWER W"),
    Column("time", "TIME"),
)


@app.command("collect")
def collect(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    once: bool = typer.Option(False, "--once", help="Take one sample of every node and store it (for cron)."),
    timeout: float = context.TIMEOUT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """One sweep of every node into the store (the continuous loop is `factoryctl controller run`)."""
    from factoryctl.errors import UsageError

    if not once:
        raise UsageError(
            "`telemetry collect` takes one sweep and needs --once.",
            "for continuous collection run `factoryctl controller run` (see docs/controller.md).",
        )
    from factoryctl.cli.listing import show_listing
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.poll import poll_nodes

    config = context.load(ctx)
    nodes = config.resolve_target(target)
    store = Store(config.store_path)
    result = poll_nodes(config, nodes, timeout)
    reached = [s for s in result.samples if s.state != "down"]
    rows = _store_sweep(config, store, result.samples, reached)
    _, quiet = context.global_options(ctx)
    if not quiet:
        sys.stderr.write(
            f"stored {rows} GPU samples from {len(reached)} of {len(nodes)} nodes in {config.store_path}\n"
        )
    items = [_sweep_item(s) for s in result.samples]
    raise typer.Exit(show_listing(lambda: (items, result.errors), COLLECT_COLUMNS, output, no_header))


def _store_sweep(
    config: FactoryConfig, store: Store, samples: Sequence[NodeSample], reached: Sequence[NodeSample]
) -> int:
    """Write the reached nodes' samples and close the store; returns the GPU rows stored.

    Without a live controller this sweep also does what the controller would: it records every node's state, the
    events between each node's stored newest sample and this one (a state change, a GPU lost or back, an XID, new
    uncorrectable ECC errors, thermal slowdown starting), rolls up and prunes. Otherwise a fault first seen by a cron
    sweep would never be an event: the controller compares its first samples with the stored newest, which already
    holds the fault. A live controller owns states, events, rollups and retention.
    """
    from factoryctl.store.lock import controller_is_running

    states: list[NodeState] = []
    events: list[Event] = []
    standalone = not controller_is_running(config.state_dir)
    try:
        if standalone:
            reached, states, events = sweep_changes(store.latest(), samples, reached)
        rows = store.write(reached, [True] * len(reached), states, events)
        if standalone:
            from factoryctl.config_schema import parse_duration

            settings = config.settings.controller
            store.rollup()
            store.prune(parse_duration(settings.raw_retention), parse_duration(settings.rollup_retention))
    finally:
        store.close()
    return rows


def sweep_changes(
    stored: Sequence[tuple[NodeState, NodeSample | None]],
    samples: Sequence[NodeSample],
    reached: Sequence[NodeSample],
) -> tuple[list[NodeSample], list[NodeState], list[Event]]:
    """What a standalone sweep stores: the reached samples (carrying forward XIDs and lost GPUs' names), states, events.

    Each node is judged against what the store holds, as the controller judges against what it last saw: a node
    whose state changed gets a `node_<state>` event (one never stored before counts as `down`, as the controller
    starts every node), and a node keeps its stored `since` while its state holds.
    """
    from factoryctl.store.rows import NodeState
    from factoryctl.telemetry.health import carry_forward, gpu_events, state_event

    before = {state.node: (state, sample) for state, sample in stored}
    states: list[NodeState] = []
    events: list[Event] = []
    for s in samples:
        was, _ = before.get(s.node, (None, None))
        held = was is not None and was.state == s.state
        since = was.since if was is not None and held else s.time
        state = NodeState(s.node, s.state, since, s.time if s.state != "down" else None, s.error, s.message)
        if not held:
            events.append(state_event(state))
        states.append(state)
    kept: list[NodeSample] = []
    for s in reached:
        _, previous = before.get(s.node, (None, None))
        events.extend(gpu_events(previous, s))
        kept.append(carry_forward(previous, s))
    return kept, states, events


#: The order the parts of an energy `source` are named in (docs/telemetry.md): older history first.
ENERGY_SOURCES = ("rollup", "counter", "power")


def node_energy_source(per_gpu: Iterable[str]) -> str:
    """A node's energy source from its GPUs': every part any GPU used, joined with `+` (`rollup+counter`)."""
    parts = {part for source in per_gpu for part in source.split("+") if part != "none"}
    named = [part for part in ENERGY_SOURCES if part in parts] + sorted(parts.difference(ENERGY_SOURCES))
    return "+".join(named) or "none"


def _sweep_item(sample: NodeSample) -> dict[str, Any]:
    """One row of `collect`'s listing: a node's state, GPU count and power in this sweep."""
    return {
        "node": sample.node,
        "state": sample.state,
        "time": iso_utc(sample.time),
        "gpus": len(sample.gpus),
        "power_w": sample.power_w,
    }


# ---------------------------------------------------------------------------------------------------- history


def _metric_names() -> list[str]:
    from factoryctl.store.rows import METRICS

    return list(METRICS)


def _complete_metric(incomplete: str) -> list[str]:
    """The metrics starting with what was typed (the names are read only when completing, to keep --help fast)."""
    from factoryctl.cli.completion import complete_choices

    return complete_choices(_metric_names())(incomplete)


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """A small trend of the values in block characters (the last `width` chunks, each its mean)."""
    if not values:
        return ""
    chunk = max(1, -(-len(values) // width))
    means = [sum(values[i : i + chunk]) / len(values[i : i + chunk]) for i in range(0, len(values), chunk)]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    ramp = SPARK if stdout_takes_unicode() else ASCII_SPARK
    return "".join(ramp[min(len(ramp) - 1, int((v - low) / span * len(ramp)))] for v in means)


def _series_item(series: Series, with_range: bool) -> dict[str, Any]:
    points = []
    for p in series.points:
        point: dict[str, Any] = {"time": iso_utc(p.time), "value": p.value}
        if with_range:
            point["min"], point["max"] = p.min, p.max
        points.append(point)
    return {"node": series.node, "gpu": series.gpu, "metric": series.metric, "points": points}


def _series_row(series: Series) -> dict[str, Any]:
    values = [p.value for p in series.points if p.value is not None]
    lows = [p.min if p.min is not None else p.value for p in series.points if p.value is not None]
    highs = [p.max if p.max is not None else p.value for p in series.points if p.value is not None]
    return {
        "node": series.node,
        "gpu": series.gpu,
        "metric": series.metric,
        "points": len(series.points),
        "from": iso_utc(series.points[0].time) if series.points else None,
        "to": iso_utc(series.points[-1].time) if series.points else None,
        "min": min(lows) if lows else None,
        "mean": sum(values) / len(values) if values else None,
        "max": max(highs) if highs else None,
        "last": values[-1] if values else None,
        "trend": sparkline(values),
    }


HISTORY_COLUMNS = (
    Column("node", "NODE"),
    Column("gpu", "GPU"),
    Column("metric", "METRIC"),
    Column("points", "POINTS"),
    Column("min", "MIN"),
    Column("mean", "MEAN"),
    Column("max", "MAX"),
    Column("last", "LAST"),
    Column("trend", "TREND"),
    Column("from", "FROM", wide_only=True),
    Column("to", "TO", wide_only=True),
)


@app.command("history")
def history(
    ctx: typer.Context,
    target: str = typer.Argument(
        "all", help="Node set, @group or all; `node/0-3` picks GPUs.", autocompletion=context.complete_target
    ),
    metric: str = typer.Option(
        "power_w",
        "--metric",
        "-m",
        help="GPU field, e.g. power_w, utilization_pct, temperature_c, sm_clock_mhz, memory_used_mib, energy_j.",
        autocompletion=_complete_metric,
    ),
    since: str = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    step: str | None = typer.Option(
        None, "--step", help="Bucket width (e.g. 1m): each point is the mean, with min and max."
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Stored history of one metric, one series per GPU (table: a summary and trend per GPU; JSON: every point)."""
    from factoryctl.config import parse_gpu_target
    from factoryctl.config_schema import parse_duration
    from factoryctl.errors import UsageError

    metric = checked_choice(metric, _metric_names(), "metric")
    step_s = None
    if step is not None:
        try:
            step_s = parse_duration(step)
        except ValueError as exc:
            raise UsageError(f"--step: {exc}.", "write e.g. --step 1m.") from None
        if step_s <= 0:
            raise UsageError("--step must be more than 0.", "write e.g. --step 1m.")
    config = context.load(ctx)
    node_part, gpus = parse_gpu_target(target)
    names = [n.name for n in config.resolve_target(node_part)]
    start, end = time_window(since, until)
    store = open_history(config)
    try:
        if step_s is None:
            step_s = _step_for_size(store.history_size(names, metric, start, end, gpus), start, end, output)
        found = [s for s in store.history(names, metric, start, end, step=step_s, gpus=gpus) if s.points]
    finally:
        store.close()
    if output in (OutputFormat.json, OutputFormat.yaml):
        emit(render_listing([_series_item(s, step_s is not None) for s in found], [], HISTORY_COLUMNS, output))
    else:
        emit(render_listing([_series_row(s) for s in found], [], HISTORY_COLUMNS, output, no_header))
    if not found:
        sys.stderr.write(f"factoryctl: no stored {metric} for `{target}` since {iso_utc(start)}.\n")


#: The most points `history` returns without `--step`: about 1 KB of memory each while rendered (3 GB for 2.9 M
#: points of a 200-node hour was measured), so a fleet-wide query over hours is bounded before it is read.
MAX_HISTORY_POINTS = 1_000_000


def _step_for_size(points: int, start: float, end: float, output: OutputFormat) -> float | None:
    """None when the points fit; else a bucket width for the table's summary, or a usage error for a listing.

    The table summarises each GPU (min, mean, max, trend), which 1-minute-or-wider buckets keep (count-weighted mean,
    true min and max), so it is bucketed and says so; JSON and YAML promise every point, so they refuse instead.
    """
    from factoryctl.errors import UsageError

    if points <= MAX_HISTORY_POINTS:
        return None
    if output in (OutputFormat.json, OutputFormat.yaml):
        raise UsageError(
            f"this query would return {points:,} points (at most {MAX_HISTORY_POINTS:,} without --step).",
            "add --step (e.g. --step 1m) for means with min and max, narrow the target or the window, or stream raw"
            " rows with `factoryctl telemetry export`.",
        )
    step = max(60.0, float(math.ceil((end - start) / 1000 / 60) * 60))
    sys.stderr.write(f"factoryctl: {points:,} points: summarised in {step:g} s buckets (--step to choose).\n")
    return step


# ---------------------------------------------------------------------------------------------------- export


class ExportFormat(str, Enum):
    """`telemetry export --format` choices."""

    csv = "csv"
    jsonl = "jsonl"


@app.command("export")
def export(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    fmt: ExportFormat = typer.Option(ExportFormat.csv, "--format", "-f", help="csv (with a header) or jsonl."),
    since: str = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Raw samples, one row per GPU per sample, to stdout (pipe it to a file or a notebook)."""
    import csv
    import json

    from factoryctl.store.rows import METRICS

    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    start, end = time_window(since, until)
    store = open_history(config)
    out = sys.stdout
    fields = ["time", "node", "gpu", *METRICS, "throttle_reasons"]
    rows = 0
    try:
        writer = csv.DictWriter(out, fields, lineterminator="\n") if fmt is ExportFormat.csv else None
        if writer is not None:
            writer.writeheader()
        for row in store.export(names, start, end):
            rows += 1
            row["time"] = iso_utc(row["time"])
            if writer is not None:
                row["throttle_reasons"] = ";".join(row["throttle_reasons"])
                writer.writerow(row)
            else:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
    finally:
        store.close()
    out.flush()
    if not rows:
        sys.stderr.write(f"factoryctl: no stored samples for `{target}` since {iso_utc(start)}.\n")


# ---------------------------------------------------------------------------------------------------- energy

ENERGY_COLUMNS = (
    Column("node", "NODE"),
    Column("gpus", "GPUS"),
    Column("energy_kwh", "ENERGY kWh", show=lambda v: "-" if v is None else f"{v:.3f}"),
    Column("cost", "COST", show=lambda v: "-" if v is None else f"{v:.2f}"),
    Column("source", "SOURCE", wide_only=True),
    Column("from", "FROM", wide_only=True),
    Column("to", "TO", wide_only=True),
)


def _finite_price(value: float | None) -> float | None:
    """`--price-per-kwh`: any finite number (nan and inf made a cost of nan and broke -o json)."""
    import math

    if value is not None and not math.isfinite(value):
        from factoryctl.errors import UsageError

        raise UsageError(f"--price-per-kwh must be a finite number, not {value:g}.", "e.g. --price-per-kwh 0.25")
    return value


@app.command("energy")
def energy(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    since: str = typer.Option("24h", "--since", help="How far back: a duration (24h, 7d) or an ISO-8601 time."),
    until: str | None = UNTIL_OPTION,
    price_per_kwh: float | None = typer.Option(
        None, "--price-per-kwh", callback=_finite_price, help="Flat price, to show a cost."
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """GPU energy per node from the store (the driver's energy counter, else integrated power), in kWh."""
    import time

    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    start, end = time_window(since, until)
    store = open_history(config)
    try:
        found = store.energy(names, start, end)
    finally:
        store.close()
    items: list[dict[str, Any]] = []
    for name in names:
        per_gpu = [(gpu, joules, source) for node, gpu, joules, source in found if node == name]
        if not per_gpu:
            continue
        kwh = sum(j for _, j, _ in per_gpu) / 3.6e6
        items.append(
            {
                "node": name,
                "gpus": len(per_gpu),
                "energy_kwh": kwh,
                "cost": kwh * price_per_kwh if price_per_kwh is not None else None,
                "source": node_energy_source(s for _, _, s in per_gpu),
                "from": iso_utc(start),
                "to": iso_utc(min(end, time.time())),
                "per_gpu": [{"gpu": g, "energy_kwh": j / 3.6e6} for g, j, _ in per_gpu],
            }
        )
    emit(render_listing(items, [], ENERGY_COLUMNS, output, no_header))
