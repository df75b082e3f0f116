"""Price sources: the port through which grid prices enter, and the built-in CSV file source.

Every feed (a CSV file here, ENTSO-E or a utility API in plugins) is a `PriceSource` registered in the
`factoryctl.price_sources.v1` entry-point group, so the engine and the simulator never care where prices came
from. A CSV file is `timestamp_utc,price_per_mwh` (extra columns ignored); an empty or NaN price is kept as an
unknown price (`None`) rather than dropped, because a hole in a feed is something the policy must react to. One
loader serves `price show`, `price history` and `power simulate`, so a file is accepted or refused the same way by
all: at least one row, each with both fields (an empty price field is unknown; a missing one is malformed),
timestamps strictly increasing, on whole seconds and from 1970 on, prices finite and at most `MAX_PRICE_PER_MWH`
in magnitude (a day's file whose every price is below 1 is used, with a warning that it looks per kWh). Times are
kept as UTC epoch seconds; the offset they are written in (+05:30 in India) is kept beside them as the market's
clock, because where the market's hours start decides whether a last hourly row is a change of resolution or a gap
(factoryctl.power.intervals).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from factoryctl.isotime import fromisoformat
from factoryctl.model.power import PricePoint, iso_utc_seconds
from factoryctl.power.csv_file import FieldError, header_check, parse_number, read_csv_rows
from factoryctl.textfile import exact_number

PRICE_COLUMNS = ("timestamp_utc", "price_per_mwh")
#: The largest price magnitude accepted, per MWh. Market caps are in the tens of thousands (European intraday
#: +-9,999 EUR, Australia's NEM about 17,500 AUD); a million is a unit or parsing mistake, and values near 1e308
#: overflow every cost sum to infinity.
MAX_PRICE_PER_MWH = 1e6
_UNKNOWN = {"", "nan", "na", "n/a", "null", "none", "-"}
#: The earliest price time accepted: the start of Unix time, as for telemetry samples (1970 to 9999). Year 1 or
#: 1900 is a mangled date, not a market's price, and would stretch the series' intervals over millennia.
EARLIEST_PRICE_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: A fraction of a second that is not zero (`00:00:00.5`, `00:00:00,250`); `.000` is a whole second.
_FRACTION = re.compile(r"[.,]\d*[1-9]")
#: The UTC offset at the end of an ISO-8601 time (`+25:00`, `-0130`), to name it when it is out of range.
_OFFSET = re.compile(r"[+-]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?$")
#: A repeat or step back of at most an hour, at a written time from 22:00 to 03:59, is where a file in local time
#: without offsets repeats its times as clocks go back (02:00-03:00 in Europe, 01:00-02:00 in North America,
#: 23:00-24:00 in Chile); elsewhere it is no clock change, and the hint to write offsets would mislead.
_CLOCKS_GO_BACK_S = 3600
_NIGHT_HOURS = frozenset((22, 23, 0, 1, 2, 3))
#: A file of at least this many rows whose every known price is below 1 per MWh either way is taken to be per kWh:
#: no market trades a whole day within a tenth of a cent per kWh of zero (a day of hourly rows is 24).
KWH_SUSPECT_ROWS = 24


class PriceSource(Protocol):
    """Anything that can list the prices of intervals in a time range (UTC epoch seconds, end exclusive).

    Plugins implement this (docs/power.md, "Price-source plugins"): constructed with `power.prices` (`str | None`),
    their `fetch` returns a list or tuple of `PricePoint`, strictly increasing in time, unknown prices as None;
    factoryctl.power.plugins checks that before anyone uses the prices.
    """

    def fetch(self, start_s: int | None = None, end_s: int | None = None) -> Sequence[PricePoint]:
        """Prices of intervals starting in [start_s, end_s), sorted by time."""
        ...


def parse_timestamp(text: str) -> int:
    """ISO-8601 to UTC epoch seconds; a time without an offset is taken as UTC.

    A bad time is a `FieldError` that names the value (Python's own "day is out of range for month" does not).
    """
    return int(_parse_moment(text).timestamp())


def _parse_moment(text: str) -> datetime:
    """ISO-8601 to an aware datetime in the offset it is written in (UTC when it names none); see `parse_timestamp`."""
    stamp = text.strip()
    if stamp.endswith(("Z", "z")):
        stamp = stamp[:-1] + "+00:00"
    try:
        moment = fromisoformat(stamp)  # Python 3.11's reading on 3.10 too (`+0000`, `20230101T000000Z`, `,000`)
    except ValueError as exc:
        raise FieldError(
            _not_a_time(text.strip(), str(exc)), "write the start of each interval as e.g. 2023-01-01T00:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Kept as whole seconds, such a row would start, be costed and be written a fraction of a second early.
    if moment.microsecond or _FRACTION.search(stamp):
        raise FieldError(
            f"timestamp_utc is {text.strip()!r}, which is not on a whole second",
            "price intervals start on whole seconds: write e.g. 2023-01-01T00:00:00Z (.000 is accepted).",
        )
    if moment < EARLIEST_PRICE_TIME:
        raise FieldError(
            f"timestamp_utc is {text.strip()!r}, before 1970: no market published that price",
            "check the year, and the column's format (ISO-8601, e.g. 2023-01-01T00:00:00Z).",
        )
    return moment


def _not_a_time(text: str, error: str) -> str:
    """What is wrong with a time `datetime.fromisoformat` refused (`error`), in our words where Python's are code."""
    if error.startswith("offset must be"):  # +25:00: "a timedelta strictly between -timedelta(hours=24) and ..."
        offset = _OFFSET.search(text)
        written = f" {offset.group(0)}" if offset else ""
        return (
            f"timestamp_utc is {text!r}, whose UTC offset{written} is out of range (an offset is less than 24 hours"
            " either way)"
        )
    problem = "" if error.startswith("Invalid isoformat") else f" ({error})"
    return f"timestamp_utc is {text!r}, which is not an ISO-8601 time{problem}"


def _local_time_hint(repeated: str) -> str:
    """The hint when a time without an offset repeats (the usual cause is a file written in local time).

    The example is the file's own repeated time: its zone is unknown (any market's), so are its offsets.
    """
    return (
        "a file written in local time without an offset repeats an hour when clocks go back (and skips one when they"
        f" go forward); write each time with its UTC offset ({repeated}±HH:MM, then {repeated} again with the offset"
        " one hour lower, as the clocks went back) or in UTC with a Z."
    )


def _without_offset(text: str) -> bool:
    """Whether an ISO-8601 time names no offset and no Z (so `parse_timestamp` took it as UTC)."""
    stamp = text.strip()
    if stamp.endswith(("Z", "z")):
        return False
    try:
        return fromisoformat(stamp).tzinfo is None
    except ValueError:
        return False


def _like_clocks_going_back(moment: datetime, back_s: int) -> bool:
    """Whether a time that repeats or steps back `back_s` seconds looks like local time as the clocks went back."""
    return back_s <= _CLOCKS_GO_BACK_S and moment.hour in _NIGHT_HOURS


def parse_price(text: str) -> float | None:
    """A price per MWh; empty or NaN-like text is an unknown price. Infinite or absurdly large prices are refused."""
    if text.strip().lower() in _UNKNOWN:
        return None
    value = parse_number(text, "price_per_mwh")
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError("infinite price")
    if abs(value) > MAX_PRICE_PER_MWH:
        raise ValueError(
            f"price {exact_number(value)} is out of range: at most {MAX_PRICE_PER_MWH:,.0f} per MWh either way"
        )
    return value + 0.0  # a written -0.00 is 0: shown and printed as 0, never -0


class _PriceRowReader:
    """Parses rows in file order, refusing a timestamp that repeats or goes back (which row would win is a guess).

    It keeps the offset of the last row's time: the market's clock (`PriceFile.utc_offset_s`).
    """

    def __init__(self) -> None:
        """Start before the first row: no time yet, UTC."""
        self.last_s: int | None = None
        self.utc_offset_s = 0
        self.without_offset = False  # the last row's time has no offset (nor Z): read as UTC

    def __call__(self, row: dict[str, str]) -> PricePoint:
        """One row as a `PricePoint`; a repeat or a step back is a `ValueError` (`FieldError` with a hint)."""
        text = row["timestamp_utc"] or ""
        moment = _parse_moment(text)
        point = PricePoint(int(moment.timestamp()), parse_price(row["price_per_mwh"] or ""))
        if self.last_s is not None and point.timestamp_s <= self.last_s:
            stamp = iso_utc_seconds(point.timestamp_s)
            problem = f"{stamp} repeats or goes back; price timestamps must be strictly increasing"
            if _without_offset(text) and _like_clocks_going_back(moment, self.last_s - point.timestamp_s):
                raise FieldError(
                    f"{problem} ({text.strip()} has no offset, so it is read as UTC)", _local_time_hint(text.strip())
                )
            raise ValueError(problem)
        offset = moment.utcoffset()
        self.last_s, self.utc_offset_s = point.timestamp_s, 0 if offset is None else int(offset.total_seconds())
        self.without_offset = _without_offset(text)
        return point


def kwh_warning(where: str, points: Sequence[PricePoint]) -> tuple[str, str] | None:
    """(sentence, hint) when `points` look like prices per kWh (`KWH_SUSPECT_ROWS`), else None; used as they are.

    Zeros alone are no sign (a file of zeros reads the same in either unit); one known price of 1 or more clears it.
    """
    known = [abs(p.price_per_mwh) for p in points if p.price_per_mwh is not None]
    if len(points) < KWH_SUSPECT_ROWS or not known or not 0 < max(known) < 1:
        return None
    return (
        f"every price in {where} is below 1 per MWh either way (at most {exact_number(max(known))}): they look like"
        " prices per kWh",
        "prices are per MWh: multiply them by 1000 (0.05 per kWh is 50 per MWh).",
    )


@dataclass(frozen=True)
class PriceFile:
    """A prices CSV as read: its rows in time order, and the market's clock its times are written in."""

    points: tuple[PricePoint, ...]
    #: The UTC offset (seconds) of the file's last row, as written (19800 for +05:30; 0 for Z or no offset).
    utc_offset_s: int
    #: The file's last row's time has no offset and no Z (read as UTC): maybe local time (`local_time_gap_hint`).
    without_offset: bool = False


_PRICES_HINT = (
    "a prices file has the header timestamp_utc,price_per_mwh and one row per interval, in time order;"
    " an unknown price is an empty field after the comma."
)


def price_header_check(source: str) -> Callable[[str], None]:
    """The check of a prices file's first line, for one read from stdin: an endless `yes |` fails at line 1."""
    return header_check(Path(source), PRICE_COLUMNS, "prices file", "price row", _PRICES_HINT)


def read_price_csv(path: Path, text: str | None = None) -> PriceFile:
    """Read a prices CSV, in time order; errors name the file and line. Every command loads prices through here.

    `text` is the file's contents when already read (`--prices -`: `path` is then `stdin`, as errors name it).
    """
    reader = _PriceRowReader()
    points = read_csv_rows(path, PRICE_COLUMNS, reader, "prices file", "price row", _PRICES_HINT, text)
    return PriceFile(tuple(points), reader.utc_offset_s, reader.without_offset)


class CsvPriceSource:
    """Prices from a local CSV file (entry point `csv`): for the simulator, back-tests and air-gapped sites."""

    name = "csv"

    def __init__(self, path: str | Path, text: str | None = None) -> None:
        """Remember the file; it is read on each `fetch`, so an updated file is picked up.

        `text` is the file's contents already read, once (stdin: `--prices -`), parsed on each `fetch` instead;
        `path` then only names it in messages (`stdin`).
        """
        self.path = Path(path)
        self.text = text
        #: The market's clock as of the last `fetch`: the offset the file's times are written in (`PriceFile`).
        self.utc_offset_s = 0
        #: Whether, as of the last `fetch`, the file's times have no offset (`PriceFile.without_offset`).
        self.without_offset = False
        #: Called with (sentence, hint) on each `fetch` of a file that looks per kWh (`kwh_warning`); the CLI says it
        #: once on stderr. A no-op by default: the prices are used as they are either way.
        self.warn: Callable[[str, str], None] = lambda sentence, hint: None

    def fetch(self, start_s: int | None = None, end_s: int | None = None) -> tuple[PricePoint, ...]:
        """Prices of intervals starting in [start_s, end_s) (either end open when None), sorted by time."""
        prices = read_price_csv(self.path, self.text)
        self.utc_offset_s, self.without_offset = prices.utc_offset_s, prices.without_offset
        units = kwh_warning(str(self.path), prices.points)
        if units is not None:
            self.warn(*units)
        return tuple(
            p
            for p in prices.points
            if (start_s is None or p.timestamp_s >= start_s) and (end_s is None or p.timestamp_s < end_s)
        )


def market_offset_s(source: object) -> int:
    """The UTC offset of the market's clock, on whose boundaries its intervals start (`intervals.row_intervals`).

    A CSV file's own offset once fetched (`CsvPriceSource`, or a `LoadedPriceSource` of one), else 0: a plugin's
    `PricePoint`s carry no offset, so its intervals are taken to start on UTC boundaries.
    """
    offset = getattr(source, "utc_offset_s", 0)
    return offset if isinstance(offset, int) else 0


def local_time_gap_hint(source: object, gap_from_s: int, gap_to_s: int) -> str | None:
    """The hint for a gap [gap_from_s, gap_to_s) in a prices file that looks like local time as the clocks went forward.

    By the rule a repeat is judged by (`_like_clocks_going_back`): times without an offset (read as UTC), an hour or
    less (Lord Howe's clocks move 30 min), at night. Such a gap is no missed interval: `the feed missed these
    intervals; fill them in the file` asked for prices of an hour that never was. None for any other gap, or a source
    other than a prices file (a plugin's prices carry no written offset).
    """
    file = getattr(source, "source", source)  # a `LoadedPriceSource` of the built-in CSV source: its file
    if not getattr(file, "without_offset", False) or gap_to_s - gap_from_s > _CLOCKS_GO_BACK_S:
        return None
    if datetime.fromtimestamp(gap_from_s, timezone.utc).hour not in _NIGHT_HOURS:
        return None
    return (
        "the file's times have no offset and this gap is an hour at night: it looks like a file written in local time"
        " as the clocks went forward (an hour that never was), and such a file is read as UTC, off by its UTC offset"
        " all year; write each time with its UTC offset (+HH:MM) or in UTC with a Z, or pass --at for a time the file"
        " covers."
    )
