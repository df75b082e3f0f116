"""Exact solution of "minimise cost subject to mean throughput >= 1 - D" over a price series, and its multiplier.

The problem is a linear programme once each interval may time-share between measured operating points: each
interval's achievable (throughput, cost) pairs are the convex hull of the curve's points scaled by the price.
The Lagrangian separates by interval, and each interval's best response to a multiplier `lam` walks along the
lower convex hull of (throughput, price x power) from its cheapest point to its most productive one, switching at
breakpoints `lam = |price| x slope`. Sorting every breakpoint and taking them greedily until the throughput
constraint holds (the last one fractionally) is therefore the exact LP optimum, in O(n log n) and with no solver.
The last breakpoint taken is the multiplier: the price of one unit of throughput, which the online policy reuses.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from factoryctl.model.power import CurvePoint

#: Halvings of the multiplier's bracket in `multiplier`: 2**-40 of the largest breakpoint.
MULTIPLIER_BISECTIONS = 40


@dataclass(frozen=True)
class HullChain:
    """A best-response path: the start point and (slope, throughput step) pairs with increasing slopes."""

    start_throughput: float
    start_value: float
    steps: tuple[tuple[float, float], ...]


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_chain(points: Sequence[tuple[float, float]]) -> HullChain:
    """The lower convex hull of (throughput, value) from the lowest value to the highest throughput.

    Ties go to more throughput at the start and to less value at the end, so every step has a positive slope.
    """
    ordered = sorted(set(points))
    lower: list[tuple[float, float]] = []
    for point in ordered:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    # Keep the lowest value at each throughput (the hull may hold equal-x points only at the ends).
    lowest = min(v for _, v in lower)
    start = max(i for i, (_, v) in enumerate(lower) if v == lowest)
    path = lower[start:]
    steps = tuple(((b[1] - a[1]) / (b[0] - a[0]), b[0] - a[0]) for a, b in itertools.pairwise(path) if b[0] - a[0] > 0)
    return HullChain(path[0][0], path[0][1], steps)


@dataclass(frozen=True)
class LagrangeChains:
    """The best-response paths for positive prices (value = power) and negative prices (value = -power)."""

    positive: HullChain
    negative: HullChain
    top_throughput: float

    @classmethod
    def from_points(cls, points: Sequence[CurvePoint]) -> LagrangeChains:
        """Chains of a curve's operating points (see `PowerCurve.points_between`)."""
        return cls(
            positive=hull_chain([(p.throughput_rel, p.power_rel) for p in points]),
            negative=hull_chain([(p.throughput_rel, -p.power_rel) for p in points]),
            top_throughput=max(p.throughput_rel for p in points),
        )


@dataclass(frozen=True)
class LpSolution:
    """The LP optimum: total cost, total throughput, and the multiplier (price of one unit of throughput).

    `multiplier` is 0 when the budget does not bind and `inf` when even full throughput misses the target.
    """

    cost: float
    throughput: float
    multiplier: float


def solve_lp(
    prices: Sequence[float | None],
    chains: LagrangeChains,
    max_mean_loss: float,
    weights: Sequence[float] | None = None,
) -> LpSolution:
    """Minimise sum(weight x price x power) subject to weighted mean throughput >= 1 - max_mean_loss, exactly.

    `weights` are the intervals' lengths (default 1 each): a weight scales an interval's cost and throughput
    alike, so its breakpoints stay at `|price| x slope` and only its throughput steps grow. A `None` price counts
    as zero cost (it is unknown, and the metrics leave it out) but its interval's throughput still counts.
    """
    lengths = [1.0] * len(prices) if weights is None else weights
    required = sum(lengths) * (1.0 - max_mean_loss)
    throughput = 0.0
    cost = 0.0
    breakpoints: list[tuple[float, float]] = []
    for price, weight in zip(prices, lengths, strict=True):
        if price is None or price == 0:
            throughput += weight * chains.top_throughput
            continue
        chain = chains.positive if price > 0 else chains.negative
        scale = abs(price)
        throughput += weight * chain.start_throughput
        cost += weight * scale * chain.start_value
        breakpoints.extend((scale * slope, weight * step) for slope, step in chain.steps)
    if throughput >= required:
        return LpSolution(cost, throughput, 0.0)
    breakpoints.sort()
    for multiplier, step in breakpoints:
        taken = min(step, required - throughput)
        cost += multiplier * taken
        throughput += taken
        if throughput >= required - 1e-12:
            return LpSolution(cost, throughput, multiplier)
    return LpSolution(cost, throughput, float("inf"))


class SortedSample:
    """A multiset of prices as `multiplier` reads it: positive ones, negated negative ones (each sorted), zeros.

    Prices enter and leave one at a time (a bisection and a list insertion or deletion), so an online policy can
    slide its reference sample along a series without sorting the whole of it again every interval.
    """

    __slots__ = ("negative", "positive", "zero")

    def __init__(self, prices: Iterable[float] = ()) -> None:
        """The sample of `prices`."""
        values = list(prices)
        self.positive = sorted(p for p in values if p > 0)
        self.negative = sorted(-p for p in values if p < 0)
        self.zero = len(values) - len(self.positive) - len(self.negative)

    def __len__(self) -> int:
        return len(self.positive) + len(self.negative) + self.zero

    def add(self, price: float) -> None:
        """Put one price in."""
        if price > 0:
            insort(self.positive, price)
        elif price < 0:
            insort(self.negative, -price)
        else:
            self.zero += 1

    def remove(self, price: float) -> None:
        """Take out one price put in before (`ValueError` if it is not there)."""
        if not (price > 0 or price < 0):  # zero, as `add` and `__init__` count it
            if not self.zero:
                raise ValueError(price)
            self.zero -= 1
            return
        values, value = (self.positive, price) if price > 0 else (self.negative, -price)
        index = bisect_left(values, value)
        if index == len(values) or values[index] != value:
            raise ValueError(price)
        del values[index]


def multiplier(prices: Sequence[float] | SortedSample, chains: LagrangeChains, max_mean_loss: float) -> float:
    """The LP's multiplier alone, fast enough to recompute every interval (the online policy's hot path).

    The throughput bought back by a multiplier `lam` is, per hull step k, the step times the number of prices
    whose breakpoint `|price| x slope_k` is at most `lam`: a bisection in each sorted price list. Bisecting on
    `lam` finds the smallest multiplier meeting the target to within 2**-40 of the largest breakpoint, from
    above (far below any price's precision), without building and sorting every breakpoint as `solve_lp` does.
    Given a `SortedSample`, nothing is sorted: the cost is the bisections alone, whatever the sample's size.
    """
    sample = prices if isinstance(prices, SortedSample) else SortedSample(prices)
    positive, negative = sample.positive, sample.negative
    start = (
        sample.zero * chains.top_throughput
        + len(positive) * chains.positive.start_throughput
        + len(negative) * chains.negative.start_throughput
    )
    deficit = len(sample) * (1.0 - max_mean_loss) - start - 1e-12
    if deficit <= 0:
        return 0.0
    terms = [
        (values, slope, step)
        for values, chain in ((positive, chains.positive), (negative, chains.negative))
        if values
        for slope, step in chain.steps
    ]
    return _bisect(terms, deficit)


def _bisect(terms: list[tuple[list[float], float, float]], deficit: float) -> float:
    """The smallest multiplier (to 2**-40 of the largest breakpoint) whose prices bought meet `deficit`.

    Each term is (sorted values, slope, step): a multiplier `lam` buys `step` per value at most `lam / slope`. The
    counts at the bracket's ends bound each bisection in the values. Once one price alone (in one term, perhaps
    repeated) separates what `low` buys, short of the deficit, from what `high` buys, each later midpoint meets the
    deficit exactly when it buys that price: one comparison instead of a count per term, and the same midpoints.
    """

    def counts(lam: float, lows: list[int], highs: list[int]) -> list[int]:
        return [
            bisect_right(values, lam / slope, low, high)
            for (values, slope, _), low, high in zip(terms, lows, highs, strict=True)
        ]

    def bought(found: list[int]) -> float:
        total = 0.0
        for (_, _, step), count in zip(terms, found, strict=True):
            total += step * count
        return total

    high = max((values[-1] * slope for values, slope, _ in terms), default=0.0)
    lows = [0] * len(terms)  # at 0 nothing is bought: every value is above 0
    highs = counts(high, lows, [len(values) for values, _, _ in terms])
    if bought(highs) < deficit:
        return float("inf")
    low = 0.0
    left = MULTIPLIER_BISECTIONS
    threshold = _one_price_between(terms, lows, highs)
    while left and threshold is None:
        left -= 1
        middle = (low + high) / 2
        found = counts(middle, lows, highs)
        if bought(found) >= deficit:
            high, highs = middle, found
        else:
            low, lows = middle, found
        threshold = _one_price_between(terms, lows, highs)
    if threshold is not None:
        value, slope = threshold
        for _ in range(left):
            middle = (low + high) / 2
            if middle / slope >= value:  # what bisect_right counts: the price, and so the deficit, is bought
                high = middle
            else:
                low = middle
    return high


def _one_price_between(
    terms: list[tuple[list[float], float, float]], lows: list[int], highs: list[int]
) -> tuple[float, float] | None:
    """The (price, slope) that alone separates the counts `lows` from `highs`, if only one does."""
    found = None
    for (values, slope, _), low, high in zip(terms, lows, highs, strict=True):
        if low == high:
            continue
        if found is not None or values[low] != values[high - 1]:
            return None
        found = (values[low], slope)
    return found
