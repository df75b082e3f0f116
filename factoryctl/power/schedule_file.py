"""A simulated schedule as CSV text, so results can be re-checked by anyone without trusting the simulator.

One row per input price row, none dropped, in the input's order: `timestamp_utc,price_per_mwh,power_limit_frac`.
An unknown price is written empty. Numbers are written with `repr` (shortest exact form), so a validator that
re-reads the file recomputes exactly the simulator's cost and loss.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from factoryctl.model.power import PowerAction, PricePoint, iso_utc_seconds

SCHEDULE_COLUMNS = ("timestamp_utc", "price_per_mwh", "power_limit_frac")


def schedule_csv(points: Sequence[PricePoint], actions: Sequence[PowerAction]) -> str:
    """The schedule as CSV text; `points` and `actions` are parallel (one action per price row).

    The caller writes it (to a file or to stdout), so the results can be printed before a write that may fail.
    """
    if len(points) != len(actions):
        raise ValueError("one action per price row is required")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SCHEDULE_COLUMNS)
    for point, action in zip(points, actions, strict=True):
        price = "" if point.price_per_mwh is None else repr(point.price_per_mwh)
        writer.writerow((iso_utc_seconds(point.timestamp_s), price, repr(action.power_limit_frac)))
    return text.getvalue()
