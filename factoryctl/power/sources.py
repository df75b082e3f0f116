"""Price sources: the port through which grid prices enter, and the built-in CSV file source.

Every feed (a CSV file here, ENTSO-E or a utility API in plugins) is a `PriceSource` registered in the
`factoryctl.price_sources.v1` entry-point group, so the engine and the simulator never care where prices came
from. A CSV file is `timestamp_utc,price_per_mwh` (extra columns ignored); an empty or NaN price is kept as an
unknown price (`None`) rather than dropped, because a hole in a feed is something the policy must react to.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from factoryctl.model.power import PricePoint
from factoryctl.power.csv_file import read_csv_rows

PRICE_COLUMNS = ("timestamp_utc", "price_per_mwh")
_UNKNOWN = {"", "nan", "na", "n/a", "null", "none", "-"}


class PriceSource(Protocol):
    """Anything that can list the prices of intervals in a time range (UTC epoch seconds, end exclusive)."""

    def fetch(self, start_s: int | None = None, end_s: int | None = None) -> tuple[PricePoint, ...]:
        """Prices of intervals starting in [start_s, end_s), sorted by time."""
        ...


def parse_timestamp(text: str) -> int:
    """ISO-8601 to UTC epoch seconds; a time without an offset is taken as UTC."""
    stamp = text.strip()
    if stamp.endswith(("Z", "z")):
        stamp = stamp[:-1] + "+00:00"
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def parse_price(text: str) -> float | None:
    """A price per MWh; empty or NaN-like text is an unknown price. Infinite prices are refused."""
    if text.strip().lower() in _UNKNOWN:
        return None
    value = float(text)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError("infinite price")
    return value


def _price_point(row: dict[str, str]) -> PricePoint:
    return PricePoint(parse_timestamp(row["timestamp_utc"] or ""), parse_price(row["price_per_mwh"] or ""))


def read_price_csv(path: Path) -> tuple[PricePoint, ...]:
    """Read a prices CSV; errors name the file and line."""
    hint = "a prices file has the header timestamp_utc,price_per_mwh."
    return tuple(read_csv_rows(path, PRICE_COLUMNS, _price_point, "prices file", "price row", hint))


class CsvPriceSource:
    """Prices from a local CSV file (entry point `csv`): for the simulator, back-tests and air-gapped sites."""

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        """Remember the file; it is read on each `fetch`, so an updated file is picked up."""
        self.path = Path(path)

    def fetch(self, start_s: int | None = None, end_s: int | None = None) -> tuple[PricePoint, ...]:
        """Prices of intervals starting in [start_s, end_s) (either end open when None), sorted by time."""
        points = sorted(read_price_csv(self.path), key=lambda p: p.timestamp_s)
        return tuple(
            p
            for p in points
            if (start_s is None or p.timestamp_s >= start_s) and (end_s is None or p.timestamp_s < end_s)
        )
