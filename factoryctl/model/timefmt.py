"""Timestamps as every JSON output and reason writes them: ISO-8601 UTC with `Z` and milliseconds (docs/cli.md).

One function, so `gpus`, `events`, the store's exports and the scheduler's reasons cannot drift apart; and a job's
TIME as `jobs list` and the dashboard's jobs panel both show it (`squeue_clock`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload

#: 400 Gregorian years, in seconds: the calendar (leap days included) repeats after them.
_CALENDAR_CYCLE_S = 146_097 * 86_400


@overload
def iso_utc(unix_seconds: float) -> str: ...
@overload
def iso_utc(unix_seconds: float | None) -> str | None: ...
def iso_utc(unix_seconds: float | None) -> str | None:
    """`2026-11-22T10:25:00.784Z` for a Unix time, rounded to the millisecond as the store keeps times; None stays None.

    Whole milliseconds, not the float's digits: formatting a float truncates (…24.1895 as .189) where the store
    rounds (.190), and the same instant would read differently in `gpus` and `events`. Any time is written: one
    outside the years 1-9999 in UTC (`--since 0001-01-01T00:00+14:00`, year 0) takes ISO-8601's expanded year,
    `+10000-01-01T00:00:00.000Z`, where `datetime` has none to give (it raised "year 0 is out of range"), as
    `iso_utc_seconds` writes a price file's.
    """
    if unix_seconds is None:
        return None
    seconds, ms = divmod(round(unix_seconds * 1000), 1000)
    cycles, rest_s = divmod(seconds, _CALENDAR_CYCLE_S)  # rest_s: 1970 to 2369, which datetime can hold
    moment = datetime.fromtimestamp(rest_s, tz=timezone.utc)
    year = moment.year + 400 * cycles
    written = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{written}-{moment:%m-%dT%H:%M:%S}.{ms:03d}Z"


def squeue_clock(seconds: float) -> str:
    """A duration as squeue's TIME shows it: `0:42`, `1:02:03`, `2-03:04:05` (days-hours:minutes:seconds)."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
