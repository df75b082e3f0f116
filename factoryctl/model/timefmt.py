"""Timestamps as every JSON output and reason writes them: ISO-8601 UTC with `Z` and milliseconds (docs/cli.md).

One function, so `gpus`, `events`, the store's exports and the scheduler's reasons cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import overload


@overload
def iso_utc(unix_seconds: float) -> str: ...
@overload
def iso_utc(unix_seconds: float | None) -> str | None: ...
def iso_utc(unix_seconds: float | None) -> str | None:
    """`2026-11-22T10:25:00.784Z` for a Unix time, rounded to the millisecond as the store keeps times; None stays None.

    Whole milliseconds, not the float's digits: formatting a float truncates (…24.1895 as .189) where the store
    rounds (.190), and the same instant would read differently in `gpus` and `events`.
    """
    if unix_seconds is None:
        return None
    ms = round(unix_seconds * 1000)
    stamp = datetime.fromtimestamp(ms // 1000, tz=timezone.utc) + timedelta(milliseconds=ms % 1000)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
