"""`factoryctl price show / history / sources`: grid prices as the power policies see them.

Prices come from a price source: `--prices FILE` (the built-in CSV source, the same files `power simulate`
replays, so an operator can look at exactly what a policy was given), else the source factory.yaml configures
(`power.price_source`, built-in or a plugin, resolved by factoryctl.power.plugins). Plugins registered in
`factoryctl.price_sources.v1` are listed by `price sources` without being imported.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from factoryctl.cli.arguments import exact_path
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, dump_json, dump_yaml, emit, render_listing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from factoryctl.model.power import PricePoint
    from factoryctl.power.plugins import LoadedPriceSource
    from factoryctl.power.sources import CsvPriceSource, PriceSource

app = typer.Typer(no_args_is_help=True)

PRICES_OPTION = typer.Option(
    None,
    "--prices",
    path_type=str,
    readable=False,  # reading is ours: an unreadable file is said as any other file error (not Click's words)
    callback=exact_path("stdin"),
    help="Prices CSV: timestamp_utc,price_per_mwh (-: stdin; default: power.price_source in factory.yaml).",
)


def open_prices(ctx: typer.Context, prices: Path | None) -> tuple[PriceSource, str, Path | None]:
    """(source, how messages name it, its file if any): `--prices FILE`, else factory.yaml's `power.price_source`.

    `--prices -` reads the file from stdin, once, here (`stdin` in messages; no file to name). Warnings about the
    source (a plugin shadowing the built-in `csv`) go to stderr; a plugin that fails to load is a
    `PriceSourceError` naming it and its package.
    """
    from factoryctl.cli.arguments import is_std_stream
    from factoryctl.cli.context import load
    from factoryctl.cli.outfile import stdin_text
    from factoryctl.errors import UsageError
    from factoryctl.power.configured_prices import open_configured
    from factoryctl.power.sources import CsvPriceSource, price_header_check

    if is_std_stream(prices):
        text = stdin_text("--prices", "prices file", "prices.csv", price_header_check("stdin"))
        return _warning_once(CsvPriceSource("stdin", text)), "stdin", None
    if prices is not None:
        return _warning_once(CsvPriceSource(prices)), str(prices), prices
    from factoryctl.cli.context import global_options
    from factoryctl.config import discover

    explicit, _ = global_options(ctx)
    where, _ = discover(explicit)
    if explicit is None and not where.exists():  # forgot --prices, rather than a factory.yaml to write
        raise UsageError(
            "no --prices FILE was given, and there is no factory.yaml to take power.price_source from.",
            "pass --prices FILE (a CSV of timestamp_utc,price_per_mwh).",
        )
    config = load(ctx)
    power = config.settings.power
    if power.price_source is None:
        raise UsageError(
            f"no --prices FILE was given and {config.path} sets no power.price_source.",
            "pass --prices FILE, or set power.price_source (and power.prices) in factory.yaml.",
        )
    source = open_configured(config)
    assert source is not None  # power.price_source is set
    say_warnings(source)
    path = getattr(source.source, "path", None) if source.builtin else None
    return source, str(path) if path is not None else source.label, path


def say_warnings(source: LoadedPriceSource) -> None:
    """Say a configured source's warnings on stderr: a plugin shadowing the built-in `csv`, a per-kWh file (once)."""
    from factoryctl.power.sources import CsvPriceSource

    for warning in source.warnings:
        sys.stderr.write(f"factoryctl: warning: {warning}.\n")
    if isinstance(source.source, CsvPriceSource):
        _warning_once(source.source)


def _warning_once(source: CsvPriceSource) -> CsvPriceSource:
    """`source`, set to say its file's warning (per-kWh units) on stderr once, however often it is fetched.

    A warning, so also under -q (docs/cli.md): the prices are used, and every cost from them may be 1000 times off.
    """
    said: set[str] = set()

    def warn(sentence: str, hint: str) -> None:
        if sentence not in said:
            said.add(sentence)
            sys.stderr.write(f"factoryctl: warning: {sentence}.\nhint: {hint}\n")

    source.warn = warn
    return source


def price_cell(value: float | None) -> str:
    """A price exactly, in its shortest form (92.01, 0.004, 1234.56; 90.00 is 90), '-' when unknown.

    Prices are money: the generic cell format (one decimal, integers from 100 up) would show 96.75 as 96.8 and
    1234.56 as 1235. Whole prices stay whole (`10`, not `10.0`).
    """
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.0f}" if number.is_integer() and abs(number) < 1e15 else repr(number)


PRICE_COLUMNS = (Column("timestamp_utc", "TIMESTAMP (UTC)"), Column("price_per_mwh", "PRICE/MWH", show=price_cell))
SOURCE_COLUMNS = (
    Column("name", "NAME"),
    Column("object", "OBJECT"),
    Column("status", "STATUS"),
    Column("package", "PACKAGE", wide_only=True),
)


def _moment(text: str | None, default: int | None, option: str) -> int | None:
    """`--since/--until/--at`: a duration ago (`1h`, `7d`) or an ISO-8601 time, parsed as every other `--since`."""
    import math

    from factoryctl.cli.telemetry import parse_when
    from factoryctl.errors import UsageError

    if text is None:
        return default
    moment = parse_when(text, time.time(), option)
    if not math.isfinite(moment):
        raise UsageError(
            f"{option} `{text}` is too far back to be a time.", f"write e.g. {option} 7d or {option} 2023-06-01T00:00Z."
        )
    return math.floor(moment)


def _item(timestamp_s: int, price: float | None) -> dict[str, Any]:
    from factoryctl.model.power import iso_utc_seconds

    return {"timestamp_utc": iso_utc_seconds(timestamp_s), "price_per_mwh": price}


def _stale_warning(
    prices: str, newest_s: int, interval_s: int, moment: int, next_s: int | None, source: object = None
) -> None:
    """Say why the row shown is not the price at `moment`: the file ends before it, or has a gap there.

    A gap that looks like local time as the clocks went forward (`local_time_gap_hint`: `source` is asked) says so
    instead of asking to fill in an hour that never was.
    """
    from factoryctl.model.power import iso_utc_seconds
    from factoryctl.power.sources import local_time_gap_hint

    shown = f"the {interval_s} s interval starting {iso_utc_seconds(newest_s)}"
    if next_s is None:
        sys.stderr.write(
            f"factoryctl: the prices in {prices} end with {shown}, before {iso_utc_seconds(moment)}: the price shown"
            " is stale, not the price of the interval running then.\n"
            "hint: update the prices file (the feed may have stopped), or pass --at to look at a past time.\n"
        )
        return
    hint = local_time_gap_hint(source, newest_s + interval_s, next_s) or (
        "the feed missed these intervals; fill them in the file, or pass --at for a time the file covers."
    )
    sys.stderr.write(
        f"factoryctl: {prices} has no price for {iso_utc_seconds(moment)}: the file has a gap from"
        f" {iso_utc_seconds(newest_s + interval_s)} to {iso_utc_seconds(next_s)}; the price shown, of {shown}, is"
        " stale.\n"
        f"hint: {hint}\n"
    )


def _unknown_warning(prices: str, start_s: int, newest_s: int | None) -> None:
    """Say that the interval running has a row with an unknown price (empty or NaN), so there is no current price."""
    from factoryctl.model.power import iso_utc_seconds

    newest = (
        "no earlier price is known" if newest_s is None else f"the newest known price is of {iso_utc_seconds(newest_s)}"
    )
    sys.stderr.write(
        f"factoryctl: {prices} has the interval starting {iso_utc_seconds(start_s)} but its price is unknown (empty"
        f" or NaN), so it is shown as stale; {newest}.\n"
        "hint: the feed missed this price; age_s is the age of the newest known price.\n"
    )


#: What to do about a source that gives no prices at all (only a plugin can: a CSV file without rows is refused).
EMPTY_SOURCE_HINT = "check the price feed and power.prices in factory.yaml, or pass --prices FILE."


def refuse_empty_source(where: str, doing: str) -> NoReturn:
    """Refuse a source that gave no prices at all, naming it (`where`: the plugin and its package), exit 1.

    The policy's refusal (configured_prices.py) in its words, with the `--prices FILE` the commands here take.
    """
    from factoryctl.power.configured_prices import refuse_empty

    refuse_empty(where, doing, EMPTY_SOURCE_HINT)


def _no_price_yet(where: str, moment: int, first_s: int | None) -> NoReturn:
    """Refuse a time before the source's first row (or a source with no row): naming both times, exit 1."""
    from factoryctl.errors import ActionFailed
    from factoryctl.model.power import iso_utc_seconds

    asked = iso_utc_seconds(moment)
    if first_s is None:
        refuse_empty_source(where, f"at or before {asked}")
    raise ActionFailed(
        f"no price in {where} at or before {asked}: its first row starts at {iso_utc_seconds(first_s)}.",
        hint=f"give --at a time from {iso_utc_seconds(first_s)} on, or a prices file that covers {asked}.",
    )


@app.command("show", short_help="The price in force at a time (now by default).")
def show_command(
    ctx: typer.Context,
    prices: Path | None = PRICES_OPTION,
    at: str | None = typer.Option(None, "--at", help="Time to look at: ISO-8601 or a duration ago (default: now)."),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """The price of the interval running at a time (now by default), and how old the newest price is.

    When the file ends before that interval, or its price there is unknown, the row is shown marked stale, with a
    warning on stderr.
    """
    from factoryctl.power.intervals import row_intervals
    from factoryctl.power.sources import market_offset_s

    moment = _moment(at, int(time.time()), "--at")
    assert moment is not None
    source, where, _ = open_prices(ctx, prices)
    points = source.fetch()
    known = [p for p in points if p.timestamp_s <= moment]
    if not known:
        _no_price_yet(where, moment, points[0].timestamp_s if points else None)
    current = known[-1]
    times = [p.timestamp_s for p in points]
    interval_s = row_intervals(times, market_offset_s(source)).durations_s[len(known) - 1]  # this row's own
    later = points[len(known)] if len(known) < len(points) else None
    ended = moment >= current.timestamp_s + interval_s
    newest = next((p for p in reversed(known) if p.price_per_mwh is not None), None)
    unknown = not ended and current.price_per_mwh is None
    stale = ended or unknown  # an unknown price is no current price either: scripts check `stale`
    item = {
        **_item(current.timestamp_s, current.price_per_mwh),
        "source": getattr(getattr(source, "entry", None), "name", "csv"),
        "age_s": None if newest is None else moment - newest.timestamp_s,
        "stale": stale,
    }
    if ended:
        _stale_warning(
            where, current.timestamp_s, interval_s, moment, None if later is None else later.timestamp_s, source
        )
    elif unknown:
        _unknown_warning(where, current.timestamp_s, None if newest is None else newest.timestamp_s)
    if output is OutputFormat.json:
        emit(dump_json(item))
        return
    if output is OutputFormat.yaml:  # one object, as -o json
        emit(dump_yaml(item))
        return
    columns = (*PRICE_COLUMNS, Column("age_s", "AGE S"), Column("stale", "STALE"))
    emit(render_listing([item], [], columns, output, no_header))


@app.command("history", short_help="Every price in force in a time range.")
def history_command(
    ctx: typer.Context,
    prices: Path | None = PRICES_OPTION,
    since: str | None = typer.Option(
        None,
        "--since",
        help="Start: a duration ago (90m, 24h, 7d) or an ISO-8601 time; the row in force then is listed first.",
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        help="End (exclusive): a duration ago or an ISO-8601 time; without it, to the last row (future rows too).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Every price in force in a time range, from the one running at --since; unknown prices are shown as null."""
    from factoryctl.cli.context import global_options
    from factoryctl.errors import UsageError
    from factoryctl.power.intervals import row_intervals, rows_overlapping
    from factoryctl.power.sources import market_offset_s

    start, end = _moment(since, None, "--since"), _moment(until, None, "--until")
    if start is not None and end is not None and end <= start:
        raise UsageError(
            f"--until {until} is not after --since {since}: the range would be empty.",
            "give --until a later time than --since (or leave it out: to the end of the file).",
        )
    source, where, _ = open_prices(ctx, prices)
    points = source.fetch()
    if not points:
        refuse_empty_source(where, "to list")
    times = [p.timestamp_s for p in points]
    lasts = row_intervals(times, market_offset_s(source)).durations_s
    # The row in force at --since first: it started before, and lasts its own interval (as `price show` judges it).
    # How long a row lasts depends on its neighbours however far away in time (the rows before a gap of days), and
    # where the prices end is the end of the series, not of the rows before --until (a gap before it is no stopped
    # feed), so the whole series is read, as `price show` reads it, and both judge every row alike.
    listed = rows_overlapping(times, lasts, -math.inf if start is None else start, end)
    items = [_item(points[i].timestamp_s, points[i].price_per_mwh) for i in listed]
    emit(render_listing(items, [], PRICE_COLUMNS, output, no_header, list(_item(0, None))))
    if start is not None or end is not None:  # a range asked for; the whole file is complete as is
        _warn_if_ended(where, times[-1] + lasts[-1], min(time.time(), math.inf if end is None else end))
    if not listed and end is not None and not global_options(ctx)[1]:
        _note_before_first(where, points, end, market_offset_s(source))


def _note_before_first(where: str, points: Sequence[PricePoint], end: int, utc_offset_s: int) -> None:
    """Say on stderr that the range ends before the prices begin, and what they span: an empty list says nothing.

    A note, so not under -q (docs/cli.md): the empty listing is the right answer, the span is what to ask instead.
    """
    from factoryctl.model.power import iso_utc_seconds
    from factoryctl.power.intervals import row_intervals

    if not points or points[0].timestamp_s < end:
        return
    times = [p.timestamp_s for p in points]
    ends = times[-1] + row_intervals(times, utc_offset_s).durations_s[-1]
    sys.stderr.write(
        f"factoryctl: note: the prices in {where} run from {iso_utc_seconds(times[0])} to {iso_utc_seconds(ends)},"
        f" so nothing before --until {iso_utc_seconds(end)} is listed.\n"
    )


def _warn_if_ended(where: str, ends: int, horizon: float) -> None:
    """Say on stderr when the prices end (`ends`) before `horizon` (the range's end, or now): a stopped feed.

    `price show` marks such a price stale; a window such as `--since 24h` would otherwise just list fewer rows (or
    only the header), which a script cannot tell from a quiet day.
    """
    from factoryctl.model.power import iso_utc_seconds

    if ends < horizon:
        sys.stderr.write(
            f"factoryctl: warning: the prices in {where} end at {iso_utc_seconds(ends)}, before"
            f" {iso_utc_seconds(math.floor(horizon))}: nothing later is listed.\n"
            "hint: update the prices file (the feed may have stopped), or pass --until for a range the file covers.\n"
        )


@app.command("sources", short_help="Price sources registered as plugins (not imported).")
def sources_command(output: OutputFormat = OUTPUT_OPTION, no_header: bool = NO_HEADER_OPTION) -> None:
    """Price sources registered in `factoryctl.price_sources.v1` (listed, not imported).

    A package whose metadata cannot be read, a plugin that registers the built-in's name and a reference that names
    no class or factory are each one warning on stderr; the others are listed all the same.
    """
    from factoryctl.config_price_sources import price_source_entries
    from factoryctl.power.plugins import BUILTIN_PACKAGE, shadow_warning

    entries, warnings = price_source_entries()
    builtins = {e.name: e for e in entries if e.package == BUILTIN_PACKAGE}
    items, notes = [], list(warnings)
    for entry in sorted(entries, key=lambda e: (e.name, e.package != BUILTIN_PACKAGE, e.package)):
        status = "built-in" if entry.package == BUILTIN_PACKAGE else "plugin"
        if entry.problem:
            status = "invalid"
            notes.append(f"package {entry.package}: price source `{entry.name}`: {entry.problem}")
        elif entry.name in builtins and status == "plugin":
            status = "shadowed"
            notes.append(shadow_warning(entry, builtins[entry.name]))
        items.append({"name": entry.name, "object": entry.value, "package": entry.package, "status": status})
    for note in notes:
        sys.stderr.write(f"factoryctl: warning: {note}.\n")
    emit(render_listing(items, [], SOURCE_COLUMNS, output, no_header))
