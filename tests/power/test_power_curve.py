"""The curve's fixed interpolation, the ladder's candidates, and the exact LP against its dual."""

from __future__ import annotations

import itertools
import random

import pytest

from factoryctl.errors import UsageError
from factoryctl.model.power import CurvePoint
from factoryctl.power.curve import PowerCurve
from factoryctl.power.policy.lagrange import LagrangeChains, hull_chain, solve_lp


def test_interpolation_is_linear_and_clamped_at_the_ends(toy):
    curve, _ = toy
    assert curve.throughput_rel(0.5) == pytest.approx(0.70)
    assert curve.throughput_rel(0.4375) == pytest.approx((0.52 + 0.70) / 2)
    assert curve.power_rel(0.9375) == pytest.approx((0.89 + 1.0) / 2)
    assert curve.throughput_rel(0.1) == pytest.approx(0.30)  # below the lowest point: the lowest point holds
    assert curve.power_rel(0.0) == pytest.approx(0.35)
    assert curve.throughput_rel(1.0) == 1.0


def test_bad_curves_are_usage_errors():
    with pytest.raises(UsageError, match="no points"):
        PowerCurve.from_points([])
    with pytest.raises(UsageError, match="twice"):
        PowerCurve.from_points([CurvePoint(0.5, 0.7, 0.6), CurvePoint(0.5, 0.8, 0.6)])
    with pytest.raises(UsageError, match="outside"):
        PowerCurve.from_points([CurvePoint(1.5, 1.0, 1.0)])
    with pytest.raises(UsageError, match="non-finite"):
        PowerCurve.from_points([CurvePoint(1.0, float("nan"), 1.0)])


def test_best_frac_respects_range_and_throughput_floor(toy):
    curve, _ = toy
    # Price positive, multiplier zero: the cheapest limit in range.
    assert curve.best_frac(100.0, 0.0, 0.25, 1.0, float("-inf")) == 0.25
    assert curve.best_frac(100.0, 0.0, 0.6, 1.0, float("-inf")) == pytest.approx(0.6)
    # A throughput floor between points is met exactly on the crossing segment.
    frac = curve.best_frac(100.0, 0.0, 0.25, 1.0, 0.95)
    assert curve.throughput_rel(frac) == pytest.approx(0.95)
    # A negative price buys power: full limit.
    assert curve.best_frac(-50.0, 0.0, 0.25, 1.0, float("-inf")) == 1.0
    # A huge multiplier makes throughput all that matters.
    assert curve.best_frac(100.0, 1e9, 0.25, 1.0, float("-inf")) == 1.0


def test_hull_chain_skips_points_above_the_lower_hull():
    chain = hull_chain([(0.2, 0.4), (0.5, 0.7), (0.6, 0.6), (1.0, 1.0)])
    assert chain.start_throughput == 0.2
    slopes = [s for s, _ in chain.steps]
    assert slopes == sorted(slopes)
    assert sum(step for _, step in chain.steps) == pytest.approx(0.8)
    assert len(chain.steps) == 2  # (0.5, 0.7) lies above the hull


def _dual_optimum(prices, points, max_loss):
    """max over lam >= 0 of the Lagrangian dual, evaluated at every possible breakpoint (independent of the hull)."""
    n = len(prices)
    candidates = {0.0}
    for p in prices:
        for a, b in itertools.combinations(points, 2):
            if a.throughput_rel != b.throughput_rel:
                lam = p * (a.power_rel - b.power_rel) / (a.throughput_rel - b.throughput_rel)
                if lam >= 0:
                    candidates.add(lam)

    def dual(lam):
        inner = sum(min(p * q.power_rel - lam * q.throughput_rel for q in points) for p in prices)
        return inner + lam * n * (1 - max_loss)

    return max(dual(lam) for lam in candidates)


@pytest.mark.parametrize("seed", range(8))
def test_lp_matches_its_dual_on_random_instances(toy, seed):
    curve, _ = toy
    rng = random.Random(seed)
    prices = [rng.choice([rng.uniform(-50, 300), rng.uniform(20, 120), 0.0]) for _ in range(12)]
    max_loss = rng.choice([0.0, 0.02, 0.1, 0.3])
    solution = solve_lp(prices, LagrangeChains.from_points(curve.points), max_loss)
    assert solution.throughput >= len(prices) * (1 - max_loss) - 1e-9
    assert solution.cost == pytest.approx(_dual_optimum(prices, curve.points, max_loss), abs=1e-7)


def test_lp_with_no_budget_runs_flat_out_and_unknown_prices_cost_nothing(toy):
    curve, _ = toy
    chains = LagrangeChains.from_points(curve.points)
    solution = solve_lp([50.0, None, 70.0], chains, 0.0)
    assert solution.cost == pytest.approx(120.0)
    assert solution.throughput == pytest.approx(3.0)


@pytest.mark.parametrize("seed", range(6))
def test_fast_multiplier_agrees_with_the_exact_greedy(toy, seed):
    from factoryctl.power.policy.lagrange import multiplier

    curve, _ = toy
    rng = random.Random(100 + seed)
    prices = [rng.uniform(-80, 400) for _ in range(60)]
    chains = LagrangeChains.from_points(curve.points)
    for max_loss in (0.0, 0.01, 0.05, 0.2, 0.9):
        exact = solve_lp(prices, chains, max_loss).multiplier
        assert multiplier(prices, chains, max_loss) == pytest.approx(exact, rel=1e-9, abs=1e-9)
