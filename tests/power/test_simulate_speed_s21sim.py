"""`power simulate`'s replay costs the same per interval whatever the history, with the very same actions.

Every interval re-sorted the whole reference sample (the policy's history plus the published future): a year of
15-minute prices took 9 s, and 212 s with `history_hours: 8760`. The sample now slides along the replay, kept
sorted (`ReferenceWindow`), and the multiplier's bisection stops counting once one price is left to decide it.
The work is counted in comparisons of prices (no clock), and the actions are checked against the old way of
computing them: a fresh, sorted sample at every interval, from a copied slice of the series.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right

import pytest
from power_data import HOUR, START_S, series

from factoryctl.model.power import PricePoint
from factoryctl.power.policy.config import OptimizePolicy
from factoryctl.power.policy.engine import EngineSetup, EngineState, decide
from factoryctl.power.policy.lagrange import MULTIPLIER_BISECTIONS, LagrangeChains, multiplier
from factoryctl.power.policy.optimizer import reference_prices
from factoryctl.power.policy.view import PriceView
from factoryctl.power.simulator import _lookback_s, replay, visible_until


class Counted(float):
    """A price that counts how often it is compared (sorting and bisecting compare; arithmetic does not)."""

    compared = 0

    def __lt__(self, other: object) -> bool:
        Counted.compared += 1
        return float.__lt__(self, other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        Counted.compared += 1
        return float.__gt__(self, other)  # type: ignore[operator]


def _comparisons(history_h: int, hours: int) -> int:
    from power_data import toy_curve

    curve, gpu = toy_curve()
    rng = random.Random(7)
    points = [PricePoint(START_S + i * HOUR, Counted(round(rng.uniform(20, 300), 2))) for i in range(hours)]
    setup = EngineSetup(OptimizePolicy(0.05, history_s=history_h * HOUR), curve, gpu, hours)
    Counted.compared = 0
    replay(points, setup, "day-ahead", HOUR)
    return Counted.compared


def test_a_ten_times_longer_history_costs_far_less_than_ten_times_the_comparisons():
    short, long = _comparisons(48, 960), _comparisons(480, 960)
    # Sorting the sample every interval made this ratio 2.8 (5,600 comparisons an interval); sliding it, 1.5 (300).
    assert long < 2 * short, (short, long)
    assert long / 960 < 480, "an interval compares fewer prices than its sample holds: nothing is re-sorted"


def _old_replay(points, setup, visibility):
    """The replay as it was: a copied slice of the series per interval, the sample sorted afresh (no window)."""
    times = [p.timestamp_s for p in points]
    state, actions = EngineState(), []
    chains, lookback = setup.chains(), _lookback_s(setup.policy)
    for point in points:
        now = point.timestamp_s
        low, high = bisect_left(times, now - lookback), bisect_left(times, visible_until(now, visibility))
        action, state = decide(setup, PriceView(now, HOUR, points[low:high]), state, chains)
        actions.append(action)
    return tuple(actions)


def _random_prices(seed: int, hours: int) -> list[PricePoint]:
    rng = random.Random(seed)
    choices = [None, 0.0, -0.0, -12.5, 45.0, 45.0, 80.25]
    values = [rng.choice(choices) if rng.random() < 0.3 else round(rng.uniform(-60, 400), 2) for _ in range(hours)]
    points = series(values)
    del points[100:103]  # a gap: the window jumps over rows that never were
    return points


@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
@pytest.mark.parametrize("history_h", [1, 5, 30, 24 * 7, 24 * 40])
@pytest.mark.parametrize("budget", ["period", "rolling"])
def test_the_sliding_sample_gives_the_very_same_actions(toy, visibility, history_h, budget):
    curve, gpu = toy
    points = _random_prices(history_h, 24 * 12)
    policy = OptimizePolicy(0.05, loss_budget=budget, history_s=history_h * HOUR)
    setup = EngineSetup(policy, curve, gpu, len(points))
    assert replay(points, setup, visibility, HOUR, [HOUR] * len(points)) == _old_replay(points, setup, visibility)


def _old_multiplier(prices, chains, max_mean_loss):
    """lagrange.multiplier before session 21: sort, then 40 bisections each counting every term in full."""
    positive = sorted(p for p in prices if p > 0)
    negative = sorted(-p for p in prices if p < 0)
    zero = len(prices) - len(positive) - len(negative)
    start = (
        zero * chains.top_throughput
        + len(positive) * chains.positive.start_throughput
        + len(negative) * chains.negative.start_throughput
    )
    deficit = len(prices) * (1.0 - max_mean_loss) - start - 1e-12
    if deficit <= 0:
        return 0.0
    terms = [
        (values, slope, step)
        for values, chain in ((positive, chains.positive), (negative, chains.negative))
        if values
        for slope, step in chain.steps
    ]

    def bought(lam):
        total = 0.0
        for values, slope, step in terms:
            total += step * bisect_right(values, lam / slope)
        return total

    high = max((values[-1] * slope for values, slope, _ in terms), default=0.0)
    if bought(high) < deficit:
        return float("inf")
    low = 0.0
    for _ in range(MULTIPLIER_BISECTIONS):
        middle = (low + high) / 2
        if bought(middle) >= deficit:
            high = middle
        else:
            low = middle
    return high


def test_the_multiplier_is_the_old_one_to_the_last_bit(toy):
    curve, _ = toy
    chains = LagrangeChains.from_points(curve.points)
    rng = random.Random(21)
    for trial in range(400):
        size = rng.choice([1, 2, 5, 40, 300])
        pool = [round(rng.uniform(-100, 500), rng.choice([0, 2])) for _ in range(rng.choice([1, 3, size]))]
        prices = [rng.choice(pool) if rng.random() < 0.7 else 0.0 for _ in range(size)]
        loss = rng.choice([0.0, 0.01, 0.05, 0.2, 0.6])
        assert multiplier(prices, chains, loss) == _old_multiplier(prices, chains, loss), (trial, prices, loss)


def test_the_window_holds_exactly_the_reference_prices(toy):
    from factoryctl.power.policy.optimizer import ReferenceWindow
    from factoryctl.power.policy.view import SeriesWindow

    points = _random_prices(3, 24 * 6)
    times = [p.timestamp_s for p in points]
    policy = OptimizePolicy(0.05, history_s=30 * HOUR)
    window = ReferenceWindow()
    for point in points:
        now = point.timestamp_s
        low, high = bisect_left(times, now - 48 * HOUR), bisect_left(times, visible_until(now, "day-ahead"))
        sample = window.slide(policy, PriceView(now, HOUR, SeriesWindow(points, times, low, high)))
        expected = reference_prices(policy, PriceView(now, HOUR, points[low:high]))
        assert sample.positive == sorted(p for p in expected if p > 0)
        assert sample.negative == sorted(-p for p in expected if p < 0)
        assert len(sample) == len(expected)
