"""The optimize policy never exceeds its loss budget, whatever the prices; it beats the blind setting on shapes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from power_data import HOUR, SERIES, series, toy_curve

from factoryctl.power.policy.config import OptimizePolicy
from factoryctl.power.simulator import inspect_series, simulate

HOURS = 10 * 24


def with_holes(values):
    """NaN prices and whole missing hours in the middle of a series."""
    points = series(values)
    kept = [p for i, p in enumerate(points) if not 100 <= i < 106]  # six missing hours
    return [p if i % 29 != 3 else type(p)(p.timestamp_s, None) for i, p in enumerate(kept)]


@pytest.mark.parametrize("shape", sorted(SERIES))
@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
@pytest.mark.parametrize("budget", ["period", "rolling"])
def test_loss_never_exceeds_budget(toy, shape, visibility, budget):
    curve, gpu = toy
    policy = OptimizePolicy(0.05, loss_budget=budget, history_s=48 * HOUR)
    result = simulate(series(SERIES[shape](HOURS)), curve, gpu, policy, visibility, 0.05)
    assert result.score.throughput_loss_pct <= 5.0 + 1e-9
    if budget == "rolling":  # every prefix stays within D as well
        lost = 0.0
        for n, action in enumerate(result.actions, start=1):
            lost += 1 - curve.throughput_rel(action.power_limit_frac)
            assert lost <= 0.05 * n + 1e-9


@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
def test_nan_and_missing_hours_are_reported_and_survived(toy, visibility):
    curve, gpu = toy
    points = with_holes(SERIES["daily_sine"](HOURS))
    result = simulate(points, curve, gpu, OptimizePolicy(0.05, history_s=48 * HOUR), visibility, 0.05)
    assert result.series.missing_intervals == 6
    assert result.series.nan_prices == sum(p.price_per_mwh is None for p in points) > 0
    assert len(result.actions) == len(points)
    assert result.score.throughput_loss_pct <= 5.0 + 1e-9


def test_budget_is_spent_where_prices_are_high(toy):
    curve, gpu = toy
    result = simulate(series(SERIES["daily_sine"](HOURS)), curve, gpu, OptimizePolicy(0.05), "day-ahead", 0.05)
    assert result.score.throughput_loss_pct == pytest.approx(5.0, abs=0.5)
    assert result.blind_saving_pct is not None
    assert result.bound_saving_pct is not None
    assert result.score.saving_pct is not None
    assert result.blind_saving_pct < result.score.saving_pct <= result.bound_saving_pct + 1e-9
    assert result.gap_fraction is not None
    assert result.gap_fraction > 0.5


def test_flat_prices_need_no_cleverness(toy):
    curve, gpu = toy
    result = simulate(series(SERIES["flat"](72)), curve, gpu, OptimizePolicy(0.05), "realtime", 0.05)
    assert result.bound_saving_pct == pytest.approx(result.blind_saving_pct, abs=1e-6)
    assert result.gap_fraction is None


def test_zero_budget_means_full_power(toy):
    curve, gpu = toy
    result = simulate(series(SERIES["spikes"](72)), curve, gpu, OptimizePolicy(0.0), "day-ahead", 0.0)
    assert {a.power_limit_frac for a in result.actions} == {1.0}


def test_series_checks(toy):
    from factoryctl.errors import UsageError

    points = series([1.0, 2.0, 3.0])
    with pytest.raises(UsageError, match="increasing"):
        inspect_series([points[1], points[0]])
    with pytest.raises(UsageError, match="empty"):
        inspect_series([])
    assert inspect_series(series([1.0], step_s=900)).interval_s == 3600  # a lone row: hourly by default
    assert inspect_series(series([1.0, 2.0, 3.0], step_s=900)).interval_s == 900


def test_optimize_respects_its_floor_and_dwell(toy):
    from factoryctl.power.policy.config import CommonRules

    curve, gpu = toy
    rules = CommonRules(floor_frac=0.6, min_dwell_s=3 * HOUR)
    policy = OptimizePolicy(0.05, history_s=48 * HOUR, rules=rules)
    result = simulate(series(SERIES["spikes"](HOURS)), curve, gpu, policy, "day-ahead", 0.05)
    fracs = [a.power_limit_frac for a in result.actions]
    assert min(fracs) >= 0.6 - 1e-12
    assert result.score.throughput_loss_pct <= 5.0 + 1e-9
    changes = [i for i in range(1, len(fracs)) if fracs[i] != fracs[i - 1]]
    dwell_breaks = [b for a, b in itertools.pairwise(changes) if b - a < 3 and result.actions[b].reason != "budget"]
    assert dwell_breaks == []


price_values = st.one_of(st.none(), st.floats(-500, 5000), st.sampled_from([0.0, -0.01, 1e6]))


@settings(max_examples=25, deadline=None)
@given(
    prices=st.lists(price_values, min_size=1, max_size=60),
    budget=st.sampled_from([0.0, 0.01, 0.05, 0.3]),
    visibility=st.sampled_from(["day-ahead", "realtime"]),
    loss_budget=st.sampled_from(["period", "rolling"]),
)
def test_property_loss_within_budget_for_any_prices(prices, budget, visibility, loss_budget):
    curve, gpu = toy_curve()
    policy = OptimizePolicy(budget, loss_budget=loss_budget, history_s=24 * HOUR)
    result = simulate(series(prices), curve, gpu, policy, visibility, budget)
    assert len(result.actions) == len(prices)
    assert result.score.throughput_loss_pct <= 100 * budget + 1e-9
    assert all(gpu.min_frac - 1e-12 <= a.power_limit_frac <= 1.0 for a in result.actions)
