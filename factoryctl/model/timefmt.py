"""Timestamps as every JSON output and reason writes them: ISO-8601 UTC with `Z` and milliseconds (DESIGN.md).

One function, so `gpus`, `events`, the store's exports and the scheduler's reasons cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload


@overload
def iso_utc(unix_seconds: float) -> str: ...
@overload
def iso_utc(unix_seconds: float | None) -> str | None: ...
def iso_utc(unix_seconds: float | None) -> str | None:
    """`2026-11-22T10:25:00.784Z` for a Unix time; None stays None."""
    if unix_seconds is None:
        return None
    stamp = datetime.fromtimestamp(unix_seconds, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
