"""`factoryctl price show / history / sources`: grid prices as the power policies see them.

Prices come from a price source; today that is the built-in CSV source (`--prices FILE`), the same files
`power simulate` replays, so an operator can look at exactly what a policy was given. Plugins registered in
`factoryctl.price_sources.v1` are listed by `price sources` without being imported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from factoryctl.cli.render import (
    NO_HEADER_OPTION,
    OUTPUT_OPTION,
    Column,
    OutputFormat,
    dump_json,
    dump_yaml,
    emit,
    render_listing,
)

app = typer.Typer(no_args_is_help=True)

PRICES_OPTION = typer.Option(..., "--prices", help="Prices CSV: timestamp_utc,price_per_mwh.")
PRICE_COLUMNS = (Column("timestamp_utc", "TIMESTAMP (UTC)"), Column("price_per_mwh", "PRICE/MWH"))
SOURCE_COLUMNS = (Column("name", "NAME"), Column("value", "OBJECT"), Column("package", "PACKAGE", wide_only=True))


def _moment(text: str | None, default: int | None) -> int | None:
    from factoryctl.errors import UsageError
    from factoryctl.power.sources import parse_timestamp

    if text is None:
        return default
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(f"not an ISO-8601 time: {text!r}", hint="e.g. 2023-06-01T12:00:00Z") from exc


def _item(timestamp_s: int, price: float | None) -> dict[str, Any]:
    from factoryctl.model.power import iso_utc_seconds

    return {"timestamp_utc": iso_utc_seconds(timestamp_s), "price_per_mwh": price}


@app.command("show")
def show_command(
    prices: Path = PRICES_OPTION,
    at: str | None = typer.Option(None, "--at", help="ISO-8601 time to look at (default: now)."),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """The price of the interval running at a time (now by default), and how old the newest price is."""
    from factoryctl.errors import ActionFailed
    from factoryctl.power.sources import CsvPriceSource

    moment = _moment(at, int(time.time()))
    assert moment is not None
    known = [p for p in CsvPriceSource(prices).fetch(end_s=moment + 1)]
    if not known:
        raise ActionFailed(f"no price in {prices} at or before the requested time", hint="check --at or the file.")
    current = known[-1]
    newest = next((p for p in reversed(known) if p.price_per_mwh is not None), None)
    item = {
        **_item(current.timestamp_s, current.price_per_mwh),
        "source": "csv",
        "age_s": None if newest is None else moment - newest.timestamp_s,
    }
    if output is OutputFormat.json:
        emit(dump_json(item))
        return
    if output is OutputFormat.yaml:  # one object, as -o json
        emit(dump_yaml(item))
        return
    columns = (*PRICE_COLUMNS, Column("age_s", "AGE S"))
    emit(render_listing([item], [], columns, output, no_header))


@app.command("history")
def history_command(
    prices: Path = PRICES_OPTION,
    since: str | None = typer.Option(None, "--since", help="ISO-8601 start (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="ISO-8601 end (exclusive)."),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Every price in a time range; unknown prices are shown as null."""
    from factoryctl.power.sources import CsvPriceSource

    points = CsvPriceSource(prices).fetch(_moment(since, None), _moment(until, None))
    items = [_item(p.timestamp_s, p.price_per_mwh) for p in points]
    emit(render_listing(items, [], PRICE_COLUMNS, output, no_header))


@app.command("sources")
def sources_command(output: OutputFormat = OUTPUT_OPTION, no_header: bool = NO_HEADER_OPTION) -> None:
    """Price sources registered in `factoryctl.price_sources.v1` (listed, not imported)."""
    from importlib.metadata import entry_points

    items = [
        {"name": ep.name, "value": ep.value, "package": ep.dist.name if ep.dist else None}
        for ep in entry_points(group="factoryctl.price_sources.v1")
    ]
    emit(render_listing(sorted(items, key=lambda i: str(i["name"])), [], SOURCE_COLUMNS, output, no_header))
