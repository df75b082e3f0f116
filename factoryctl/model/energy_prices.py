"""Energy priced interval by interval: the price intervals a window falls in, and their kWh times their price.

A cost at grid prices is never the window's energy times one price: a run through a price spike pays the spike. So
the window is cut at the price source's interval boundaries (`covering`), each piece's energy is read on its own,
and the pieces are priced and summed (`priced`). Shared by `jobs show` (a job's cost, jobs/accounting.py) and
`power report` (each node's cost over a period, power/report.py), which live in layers that may not import each
other; pure, so both read the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: A price interval: (start, end, price per MWh or None when unknown), unix seconds.
PriceInterval = tuple[float, float, "float | None"]

#: The most price intervals a cost is summed over (a month of 15-minute prices); a longer window gets no cost.
MAX_INTERVALS = 3000


def covering(prices: Sequence[PriceInterval], start: float, end: float) -> list[PriceInterval] | None:
    """The price intervals of [start, end), cut to it, in time order; None when a moment of it has no interval.

    None too beyond `MAX_INTERVALS` intervals: a cost is then not summed (each interval is a read of the store).
    An interval whose price is unknown is kept (price None): `priced` says it has no cost.
    """
    within = sorted((lo, hi, price) for lo, hi, price in prices if lo < end and hi > start)
    covered = start
    for lo, hi, _ in within:
        if lo > covered:
            return None
        covered = max(covered, hi)
    if covered < end or len(within) > MAX_INTERVALS:
        return None
    return [(max(start, lo), min(end, hi), price) for lo, hi, price in within]


def priced(parts: Iterable[tuple[float, float | None]]) -> float | None:
    """The cost of (kWh, price per MWh) parts: each part's kWh times its price per kWh, summed, to 6 places.

    None when a part's price is unknown: part of the energy would have no cost, and a sum without it is no cost.
    """
    cost = 0.0
    for kwh, price in parts:
        if price is None:
            return None
        cost += kwh * price / 1000
    return round(cost, 6)
