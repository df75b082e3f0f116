"""Two rules of the power policy no test pinned (a mutation run changed them and every test still passed).

A cap of 0 (`cap_w: 0`, `cap_pct: 0`) is a cap below the GPU's range: it is clamped to the GPU's minimum and the
interval counted as clamped, as docs/power.md says of any limit outside the range; only a negative cap is refused.
And a positive price, however small (0 < price <= 1 per MWh), is a cost in the clairvoyant bound: the interval
starts at its cheapest point and buys throughput at price x slope, as at any positive price; a negative price's
chain (full power earns) would make a bound that earns money where every real policy pays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from power_data import CURVE_ROWS, series, write_prices
from test_power_simulate_cli import read_csv, simulate_args

from factoryctl.model.power import CurvePoint
from factoryctl.power.policy.lagrange import LagrangeChains, SortedSample, multiplier, solve_lp

#: The toy GPU's smallest limit: 100 W of its 400 W.
GPU_MIN_FRAC = 0.25
CHAINS = LagrangeChains.from_points([CurvePoint(frac, thr, pw) for _, frac, thr, pw in CURVE_ROWS])
#: Mean throughput 0.95 on the toy curve: time-shared between (0.92, 0.78) and (0.98, 0.89), power 0.835.
POWER_AT_95 = 0.78 + 0.03 * (0.89 - 0.78) / (0.98 - 0.92)


def _tiers(cli, tmp_path: Path, curve_file: Path, cap: str):
    prices = write_prices(tmp_path / "prices.csv", series([50.0, 150.0, 150.0, 50.0]))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"policy: tiers\ntiers:\n  - above_per_mwh: 100\n    {cap}\n")
    schedule = tmp_path / "schedule.csv"
    args = simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "--policy", str(policy))
    return cli(*args, "-o", "json", "--schedule-out", str(schedule)), schedule


@pytest.mark.parametrize("cap", ["cap_w: 0", "cap_pct: 0", "cap_w: 0.0"])
def test_a_cap_of_0_is_clamped_to_the_gpus_minimum(cli, tmp_path: Path, curve_file: Path, cap: str) -> None:
    result, schedule = _tiers(cli, tmp_path, curve_file, cap)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["clamped_intervals"] == 2
    assert [float(row["power_limit_frac"]) for row in read_csv(schedule)] == [1.0, GPU_MIN_FRAC, GPU_MIN_FRAC, 1.0]


@pytest.mark.parametrize(("cap", "key"), [("cap_w: -1", "cap_w"), ("cap_pct: -0.5", "cap_pct")])
def test_a_negative_cap_is_refused(cli, tmp_path: Path, curve_file: Path, cap: str, key: str) -> None:
    result, schedule = _tiers(cli, tmp_path, curve_file, cap)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {key} in tier 1 of {tmp_path / 'policy.yaml'} must not be negative.\n" in result.stderr
    assert not schedule.exists()


@pytest.mark.parametrize("price", [1e-6, 0.5, 1.0, 1.5])
def test_a_small_positive_price_is_a_cost_in_the_bound(price: float) -> None:
    solution = solve_lp([price, price], CHAINS, 0.05)
    assert solution.cost == pytest.approx(2 * price * POWER_AT_95)
    assert solution.throughput == pytest.approx(1.9)
    assert solution.multiplier == pytest.approx(price * (0.89 - 0.78) / (0.98 - 0.92))
    # The online policy's multiplier reads the same prices the same way.
    assert multiplier(SortedSample([price, price]), CHAINS, 0.05) == pytest.approx(solution.multiplier)
    earned = solve_lp([-price, -price], CHAINS, 0.05)  # a negative price: full power earns, nothing to buy
    assert (earned.cost, earned.throughput, earned.multiplier) == (pytest.approx(-2 * price), 2.0, 0.0)


def test_the_bound_at_a_price_of_1_per_mwh_saves_what_the_blind_setting_does(
    cli, tmp_path: Path, curve_file: Path
) -> None:
    """Flat prices: nothing beats spending the budget evenly, so the bound saves 1 - 0.835 (not 200 %: it earned)."""
    prices = write_prices(tmp_path / "prices.csv", series([1.0] * 24))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bound_saving_pct"] == pytest.approx(100 * (1 - POWER_AT_95))
    assert report["blind_saving_pct"] == pytest.approx(100 * (1 - POWER_AT_95))
