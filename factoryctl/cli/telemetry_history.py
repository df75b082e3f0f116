"""`factoryctl telemetry history / export` (and the registration of `energy`): the stored samples, read back.

These commands answer from the store alone, in milliseconds, and import neither paramiko nor pynvml; `collect`,
which reaches the nodes, and the time window and store opener they share stay in telemetry.py, `energy` in
telemetry_energy.py. They register on the `telemetry` app (see `VERB_MODULES` in app.py), after `collect`. With no
store yet, or nothing stored in the window, they print an empty result and exit 0, saying why (nothing_stored.py).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.nothing_stored import TELEMETRY_STORED_BY, note, note_no_store, open_if_stored
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION, checked_choice
from factoryctl.cli.render import Column, OutputFormat, Utf8Text, emit, iso_utc, render_listing, stdout_takes_unicode
from factoryctl.cli.telemetry import SINCE_OPTION, UNTIL_OPTION, time_window, window_text
from factoryctl.cli.telemetry_energy import ENERGY_COLUMNS as ENERGY_COLUMNS  # where callers and tests find them
from factoryctl.cli.telemetry_energy import energy
from factoryctl.cli.telemetry_energy import node_energy_source as node_energy_source

if TYPE_CHECKING:
    import io

    from factoryctl.store.history import SeriesExtent
    from factoryctl.store.rows import Series


def register(telemetry_app: typer.Typer) -> None:
    """Add `history`, `export` and `energy` to the `telemetry` app, in that order (after `collect`)."""
    telemetry_app.command("history", short_help="Stored history of one metric, one series per GPU.")(history)
    telemetry_app.command("export", short_help="Raw samples, one row per GPU per sample, to stdout.")(export)
    telemetry_app.command("energy", short_help="GPU energy per node from the store, in kWh.")(energy)


# ---------------------------------------------------------------------------------------------------- history


def _metric_names() -> list[str]:
    from factoryctl.store.rows import METRICS

    return list(METRICS)


def _complete_metric(incomplete: str) -> list[str]:
    """The metrics starting with what was typed (the names are read only when completing, to keep --help fast)."""
    from factoryctl.cli.completion import complete_choices

    return complete_choices(_metric_names())(incomplete)


def sparkline(
    values: Sequence[float], width: int = 24, weights: Sequence[int] | None = None, ascii_only: bool = False
) -> str:
    """A small trend of the values in block characters: at most about `width` chunks, each its (weighted) mean.

    With `weights` (how many samples each value stands for), each chunk holds about the same number of samples,
    not of values: a rolled-up minute of 60 samples takes as much of the line as 60 raw points. `ascii_only`: the
    ASCII ramp, for a table on a stdout that cannot write block characters (`_show_history`).
    """
    from factoryctl.model.sparkline import ramp_line, sample_means

    if not values:
        return ""
    return ramp_line(sample_means(values, width, weights), ascii_only=ascii_only)


def _series_item(series: Series, with_range: bool) -> dict[str, Any]:
    points = []
    for p in series.points:
        point: dict[str, Any] = {"time": iso_utc(p.time), "value": p.value}
        if with_range:
            point["min"], point["max"] = p.min, p.max
        points.append(point)
    return {"node": series.node, "gpu": series.gpu, "metric": series.metric, "points": points}


def _series_row(series: Series, ascii_trend: bool = False) -> dict[str, Any]:
    """A GPU's summary: min and max of the points' own, and mean and trend weighted by the samples each stands for.

    The trend is in block characters, the ASCII ramp if `ascii_trend` (a table's, on a stdout that cannot write them).

    A window past the raw window mixes raw points with 1-minute rollups (and `--step` buckets hold any number of
    samples): an unweighted mean counted a minute of 100 W once against 1,800 raw seconds of 500 W.
    """
    from factoryctl.store.history import CountedPoint

    kept = [p for p in series.points if p.value is not None]
    values = [p.value for p in kept if p.value is not None]
    weights = [p.samples if isinstance(p, CountedPoint) else 1 for p in kept]
    lows = [p.min if p.min is not None else p.value for p in kept if p.value is not None]
    highs = [p.max if p.max is not None else p.value for p in kept if p.value is not None]
    return {
        "node": series.node,
        "gpu": series.gpu,
        "metric": series.metric,
        "points": len(series.points),
        "from": iso_utc(series.points[0].time) if series.points else None,
        "to": iso_utc(series.points[-1].time) if series.points else None,
        "min": min(lows) if lows else None,
        "mean": sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights) if values else None,
        "max": max(highs) if highs else None,
        "last": values[-1] if values else None,
        "trend": sparkline(values, weights=weights, ascii_only=ascii_trend),
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


def history(
    ctx: typer.Context,
    target: str = context.GPU_TARGET_ARG,
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

    metric = checked_choice(metric, _metric_names(), "metric")
    step_s = _step_seconds(step)
    config = context.load(ctx)
    node_part, gpus = parse_gpu_target(target)
    names = [n.name for n in config.resolve_target(node_part)]
    start, end = time_window(since, until)
    store = open_if_stored(config)
    if store is None:
        _show_history([], {}, step_s is not None, output, no_header)
        note_no_store(ctx, config, f"no stored {metric}", TELEMETRY_STORED_BY)
        return
    try:
        extents = store.history_extents(names, metric, start, end, gpus)
        bucketed = step_s is not None
        step_s = _step_for_size(extents, step_s, start, end, output)
        found = [s for s in store.history(names, metric, start, end, step=step_s, gpus=gpus) if s.points]
        if not found and gpus is not None:
            _refuse_missing_gpus(store.gpu_indexes(names), node_part, gpus)
    finally:
        store.close()
    _show_history(found, {(e.node, e.gpu): e for e in extents}, bucketed, output, no_header)
    if not found:
        note(ctx, f"no stored {metric} for `{target}` {window_text(start, end, until)}.")


def _refuse_missing_gpus(known: dict[str, list[int]], node_part: str, gpus: Sequence[int]) -> None:
    """A usage error (exit 2) when the store knows the nodes' GPUs and none of them is one of `gpus`, as `gpus` says.

    `history s3/5` of a 2-GPU node printed an empty table and exited 0, where `gpus`, `power set` and `sim inject`
    refuse a GPU the node does not have. Nodes the store knows no GPU of (never stored) are not refused: there is
    nothing to tell.
    """
    from factoryctl.errors import UsageError
    from factoryctl.model.folding import fold_indexes, fold_nodes

    if not known or any(gpu in indexes for indexes in known.values() for gpu in gpus):
        return
    alike: dict[str, list[str]] = {}  # 2,000 nodes of 8 GPUs are one `g[0001-2000] have GPUs 0-7`
    for node, indexes in known.items():
        alike.setdefault(fold_indexes(indexes), []).append(node)
    has = "; ".join(
        f"{fold_nodes(nodes)} {'has' if len(nodes) == 1 else 'have'} GPUs {ranges}" for ranges, nodes in alike.items()
    )
    raise UsageError(
        f"no node of `{node_part}` has GPU {','.join(map(str, gpus))} in the store ({has}).",
        f"run `factoryctl gpus {node_part}` to see their GPUs.",
    )


def _step_seconds(step: str | None) -> float | None:
    """`--step` in seconds (None when not given); a malformed or non-positive width is a usage error."""
    from factoryctl.config_schema import parse_duration
    from factoryctl.errors import UsageError

    if step is None:
        return None
    try:
        step_s = parse_duration(step)
    except ValueError as exc:
        raise UsageError(f"--step: {exc}.", "write e.g. --step 1m.") from None
    if step_s <= 0:
        raise UsageError("--step must be more than 0.", "write e.g. --step 1m.")
    return step_s


def _show_history(
    found: Sequence[Series],
    extents: Mapping[tuple[str, int], SeriesExtent],
    bucketed: bool,
    output: OutputFormat,
    no_header: bool,
) -> None:
    """JSON and YAML list every point (with min and max when bucketed); tables summarise each series in a row.

    A table's POINTS, FROM, TO and LAST are the stored points' (`extents`), bucketed or not: a summarised table
    showed the buckets' count, first and last start and last mean under those names.
    """
    if output in (OutputFormat.json, OutputFormat.yaml):
        emit(render_listing([_series_item(s, bucketed) for s in found], [], HISTORY_COLUMNS, output))
    else:
        from factoryctl.store.rows import Series  # at run time: the module imports it for types only

        fields = list(_series_row(Series("", 0, "")))  # a blank series' row: the CSV header when none is found
        ascii_trend = output is not OutputFormat.csv and not stdout_takes_unicode()  # CSV: UTF-8 always (render_csv)
        items = [_stored_extent(_series_row(s, ascii_trend), extents.get((s.node, s.gpu))) for s in found]
        emit(render_listing(items, [], HISTORY_COLUMNS, output, no_header, fields))


def _stored_extent(row: dict[str, Any], extent: SeriesExtent | None) -> dict[str, Any]:
    """A summary row with the stored points' count, first and last time and last value (the buckets' are not)."""
    if extent is not None:
        row.update(points=extent.points, last=extent.last_value)
        row.update({"from": iso_utc(extent.first), "to": iso_utc(extent.last)})
    return row


#: The most points `history` returns (raw points and rolled-up minutes, or `--step` buckets): about 1 KB of memory
#: each while rendered (3 GB for 2.9 M points of a 200-node hour was measured), so a fleet-wide query over hours
#: is bounded before it is read.
MAX_HISTORY_POINTS = 1_000_000
#: Bucket widths a refusal suggests and a summarised table picks from, narrowest first (seconds).
NICE_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 604800)
#: Buckets per GPU a summarised table aims for: enough for its trend (`sparkline` draws about 24 chunks).
SUMMARY_BUCKETS = 48


def bucket_bound(extents: Iterable[SeriesExtent], step: float | None) -> int:
    """The most points `history` returns with `step` (None: every point).

    Per GPU, its points or the buckets its first to last point spans, whichever is fewer: exact for a GPU sampled
    all through, more than it returns for one with a gap longer than a bucket (refused a little early, never late).
    """
    if step is None:
        return sum(e.points for e in extents)
    return sum(min(e.points, int(e.last // step - e.first // step) + 1) for e in extents)


def _step_for_size(
    extents: Sequence[SeriesExtent], step: float | None, start: float, end: float, output: OutputFormat
) -> float | None:
    """`step` when its points fit; else a bucket width for the table's summary, or a usage error for a listing.

    The table summarises each GPU (min, mean, max, trend), which 1-minute-or-wider buckets keep (count-weighted mean,
    true min and max), so it is bucketed and says so; JSON and YAML promise every point (or bucket), so they refuse,
    naming the narrowest step whose buckets fit.
    """
    from factoryctl.errors import UsageError

    points = bucket_bound(extents, step)
    if points <= MAX_HISTORY_POINTS:
        return step
    fitting = next((s for s in NICE_STEPS if bucket_bound(extents, s) <= MAX_HISTORY_POINTS), NICE_STEPS[-1])
    if output in (OutputFormat.json, OutputFormat.yaml):
        given = f"with --step {_duration_text(step)}" if step is not None else "without --step"
        raise UsageError(
            f"this query would return {points:,} points (at most {MAX_HISTORY_POINTS:,} {given}).",
            f"add --step {_duration_text(fitting)} or wider for means with min and max, narrow the target or the"
            " window, or stream raw rows with `factoryctl telemetry export`.",
        )
    if step is not None:  # the user's width, made as narrow as fits: not the summary's (the trend would be one bar)
        sys.stderr.write(
            f"factoryctl: --step {_duration_text(step)} would give {points:,} points: summarised in"
            f" {_duration_text(fitting)} buckets instead.\n"
        )
        return float(fitting)
    wide = float(math.ceil((end - start) / SUMMARY_BUCKETS / 60) * 60)
    chosen = max(float(fitting), 60.0, wide if bucket_bound(extents, wide) <= MAX_HISTORY_POINTS else 0.0)
    sys.stderr.write(f"factoryctl: {points:,} points: summarised in {chosen:g} s buckets (--step to choose).\n")
    return chosen


def _duration_text(seconds: float) -> str:
    """A step as `--step` takes it: 30s, 5m, 2h, 1d (the largest unit it is a whole number of), 2.5s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# ---------------------------------------------------------------------------------------------------- export


class ExportFormat(str, Enum):
    """`telemetry export --format` choices."""

    csv = "csv"
    jsonl = "jsonl"


def export(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    fmt: ExportFormat = typer.Option(ExportFormat.csv, "--format", "-f", help="csv (with a header) or jsonl."),
    since: str = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
) -> None:
    """Raw samples, one row per GPU per sample, to stdout (pipe it to a file or a notebook).

    Written in chunks of about 64 KiB as `Utf8Text`: CSV is UTF-8 whatever the locale, as `-o csv` is (`emit`).
    """
    import csv
    import io
    import json

    from factoryctl.store.rows import METRICS

    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    start, end = time_window(since, until)
    store = open_if_stored(config)
    out = io.StringIO()
    fields = ["time", "node", "gpu", *METRICS, "throttle_reasons"]
    rows = 0
    try:
        writer = csv.DictWriter(out, fields, lineterminator="\n") if fmt is ExportFormat.csv else None
        if writer is not None:
            writer.writeheader()
        for row in store.export(names, start, end) if store is not None else ():
            rows += 1
            row["time"] = iso_utc(row["time"])
            if writer is not None:
                row["throttle_reasons"] = ";".join(row["throttle_reasons"])
                writer.writerow(row)
            else:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
            if out.tell() >= EXPORT_CHUNK:
                _emit_chunk(out)
    finally:
        if store is not None:
            store.close()
    _emit_chunk(out)
    if store is None:
        note_no_store(ctx, config, "no stored sample", TELEMETRY_STORED_BY)
    elif not rows:
        note(ctx, f"no stored samples for `{target}` {window_text(start, end, until)}.")


#: How much `export` gathers before it writes (characters).
EXPORT_CHUNK = 1 << 16


def _emit_chunk(out: io.StringIO) -> None:
    """Write what `out` holds to stdout in UTF-8 (`Utf8Text`, JSON Lines being ASCII) and empty it."""
    emit(Utf8Text(out.getvalue()))
    out.seek(0)
    out.truncate()
