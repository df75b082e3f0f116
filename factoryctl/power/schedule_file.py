"""Writing a simulated schedule as CSV, so results can be re-checked by anyone without trusting the simulator.

One row per input price row, none dropped, in the input's order: `timestamp_utc,price_per_mwh,power_limit_frac`.
An unknown price is written empty. Numbers are written with `repr` (shortest exact form), so a validator that
re-reads the file recomputes exactly the simulator's cost and loss.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from factoryctl.errors import UsageError
from factoryctl.model.power import PowerAction, PricePoint, iso_utc_seconds

SCHEDULE_COLUMNS = ("timestamp_utc", "price_per_mwh", "power_limit_frac")


def write_schedule_csv(path: Path, points: Sequence[PricePoint], actions: Sequence[PowerAction]) -> None:
    """Write the schedule; `points` and `actions` are parallel (one action per price row)."""
    if len(points) != len(actions):
        raise ValueError("one action per price row is required")
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(SCHEDULE_COLUMNS)
            for point, action in zip(points, actions, strict=True):
                price = "" if point.price_per_mwh is None else repr(point.price_per_mwh)
                writer.writerow((iso_utc_seconds(point.timestamp_s), price, repr(action.power_limit_frac)))
    except OSError as exc:
        raise UsageError(
            f"cannot write the schedule to {path}: {exc.strerror}.", "check that its directory exists and is writable."
        ) from exc
