"""Curve rows that cannot be measurements are refused at their file:line; tiers at the same price are refused.

A NaN, a `pl_frac` outside (0, 1] or a `pl_frac` measured twice for one GPU and workload is a bad curve row (exit 2,
file:line), found while reading rather than later without a place. `throughput_rel` above 1 is real data (the Zeus
measurements have it) and is used as measured: the loss is then negative, as docs/power.md says.
"""

from __future__ import annotations

import pytest
from curve_rows import HEADER, assert_curve_row_refused, simulate
from power_data import series, write_prices

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange
from factoryctl.power.policy.config import parse_policy

BAD_CURVES = {
    "nan power": ("x,w,0.5,0.8,0.6\nx,w,1.0,1.0,nan\n", ":3: bad curve row: power_rel is nan; a measured value"),
    "nan limit": ("x,w,nan,0.8,0.6\nx,w,1.0,1.0,1.0\n", ":2: bad curve row: pl_frac is nan; a measured value"),
    "twice": (
        "x,w,0.5,0.8,0.6\nx,w,0.5,0.9,0.7\nx,w,1.0,1.0,1.0\n",
        ":3: bad curve row: x w measures pl_frac 0.5 twice; keep one row per limit.",
    ),
    "above one": ("x,w,0.5,0.8,0.6\nx,w,1.5,1.0,1.0\n", ":3: bad curve row: pl_frac 1.5 is outside (0, 1]"),
}


@pytest.mark.parametrize("name", sorted(BAD_CURVES))
def test_an_impossible_curve_row_is_refused_at_its_line(cli, tmp_path, name):
    assert_curve_row_refused(cli, tmp_path, *BAD_CURVES[name])


def test_the_same_limit_for_another_workload_is_not_a_duplicate(cli, tmp_path):
    curve = tmp_path / "c.csv"
    curve.write_text(HEADER + "x,w,0.5,0.8,0.6\nx,w,1.0,1.0,1.0\nx,v,0.5,0.8,0.6\nx,v,1.0,1.0,1.0\n")
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    assert cli(*simulate(prices, curve)).exit_code == 0


def test_throughput_above_one_is_used_as_measured_and_gives_a_negative_loss(cli, tmp_path):
    curve = tmp_path / "c.csv"
    curve.write_text(HEADER + "x,w,0.5,1.2,0.6\nx,w,1.0,1.0,1.0\n")
    prices = write_prices(tmp_path / "p.csv", series([100.0] * 24))
    result = cli(*simulate(prices, curve, "-o", "json"))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["throughput_loss_pct"] < 0
    assert document["within_loss_budget"] is True


def test_two_tiers_at_the_same_price_are_refused():
    mapping = {
        "policy": "tiers",
        "tiers": [{"above_per_mwh": 100, "cap_pct": 80}, {"above_per_mwh": 100, "cap_pct": 60}],
    }
    with pytest.raises(UsageError) as refused:
        parse_policy(mapping, GpuPowerRange(100.0, 400.0, 400.0), where="t.yaml")
    assert refused.value.message == "tiers 1 and 2 of t.yaml both start at 100 per MWh, so which cap applies is a guess"
    assert refused.value.hint == "give each above_per_mwh once, with the cap it should set."
