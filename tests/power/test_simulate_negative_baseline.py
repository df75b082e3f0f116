"""Savings keep their sign when prices are mostly negative (the baseline then earns money rather than costs it).

saving = (baseline - cost) / |baseline|: a policy that earns more than running flat out saved money, and reads as a
positive saving; gap_closed_frac is null only when bound = blind. The schedule is re-checked by the validator of
test_power_simulate_cli, which shares no code with the simulator.
"""

from __future__ import annotations

import pytest
from power_data import series, toy_curve, write_prices
from test_power_simulate_cli import simulate_args, validate

from factoryctl.model.power import PricePoint
from factoryctl.power.simulator import SimulationResult, saving_pct, score


def negative_week() -> list[float | None]:
    """-30 per MWh all week, 60 in the hours 07-08 and 18-19 (a sunny, windy week)."""
    return [60.0 if h % 24 in (7, 18) else -30.0 for h in range(7 * 24)]


@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
def test_a_policy_that_earns_more_than_the_baseline_shows_a_positive_saving(cli, tmp_path, curve_file, visibility):
    prices = write_prices(tmp_path / "prices.csv", series(negative_week()))
    schedule = tmp_path / "schedule.csv"
    args = simulate_args(prices, curve_file, "--price-visibility", visibility, "-o", "json", "--schedule-out")
    result = cli(*args, str(schedule))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["baseline_cost"] < 0
    assert document["cost"] < document["baseline_cost"]  # it earned more than running flat out
    assert document["saving_pct"] > 0
    assert document["blind_saving_pct"] <= document["saving_pct"] <= document["bound_saving_pct"] + 1e-9
    assert document["bound_saving_pct"] > document["blind_saving_pct"]
    blind, bound = document["blind_saving_pct"], document["bound_saving_pct"]
    assert document["gap_closed_frac"] == pytest.approx((document["saving_pct"] - blind) / (bound - blind))
    recomputed = validate(schedule, prices, curve_file, "tgpu", "bench/toy")
    for key, value in recomputed.items():
        assert document[key] == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_saving_is_relative_to_the_size_of_the_baseline():
    assert saving_pct(100.0, 80.0) == pytest.approx(20.0)
    assert saving_pct(-100.0, -120.0) == pytest.approx(20.0)  # earned 20 more
    assert saving_pct(-100.0, -80.0) == pytest.approx(-20.0)  # earned 20 less
    assert saving_pct(0.0, -5.0) is None


def test_a_zero_baseline_has_no_saving_and_no_gap():
    curve, _ = toy_curve()
    points = series([50.0, -50.0])
    result = score(points, [1.0, 0.5], curve)
    assert result.baseline_cost == 0
    assert result.saving_pct is None
    outcome = SimulationResult((), result, 0.0, 10.0, None)  # type: ignore[arg-type]
    assert outcome.gap_fraction is None


def test_gap_closed_is_null_only_when_bound_equals_blind():
    curve, _ = toy_curve()
    base = score([PricePoint(0, -10.0)], [1.0], curve)
    assert SimulationResult((), base, -5.0, -5.0, None).gap_fraction is None  # type: ignore[arg-type]
    assert SimulationResult((), base, -5.0, 5.0, None).gap_fraction == pytest.approx(0.5)  # type: ignore[arg-type]


def test_a_baseline_too_near_zero_has_no_saving():
    """Prices that nearly cancel (mean 0.01 against a typical 60): a percentage of ~0 means nothing, so null."""
    curve, _ = toy_curve()
    points = series([60.01, -60.0] * 12)
    result = score(points, [1.0, 0.5] * 12, curve)
    assert 0 < result.baseline_cost < 1
    assert result.saving_pct is None
    assert saving_pct(1.0, 0.5, gross=50.0) == pytest.approx(50.0)  # 2 % of the gross bill: still meaningful
    assert saving_pct(1.0, 0.5, gross=200.0) is None  # 0.5 %: not


def test_a_null_saving_is_explained_on_stderr(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "cancel.csv", series([60.01, -60.0] * 48))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    assert result.json()["saving_pct"] is None
    assert "so saving_pct is null: compare cost with baseline_cost." in result.stderr
