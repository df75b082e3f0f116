"""A curve file's watt columns must be a GPU's power limits: finite, in (0, 10 kW], one largest limit per GPU.

`max_power_limit_w` of inf or nan crashed `power simulate` (an IndexError in the curve's interpolation), negative or
absurd watts gave a meaningless range silently, and rows of one GPU and workload giving 300 and 400 W silently took
the larger. Each is now a bad curve row at its file:line (exit 2) with a hint about the column.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from curve_rows import simulate
from power_data import series, write_prices

MAX_HEADER = "gpu,workload,pl_frac,throughput_rel,power_rel,max_power_limit_w\n"
LIMIT_HEADER = "gpu,workload,pl_frac,throughput_rel,power_rel,power_limit_w\n"
BOTH_HEADER = "gpu,workload,pl_frac,throughput_rel,power_rel,power_limit_w,max_power_limit_w\n"
NOT_A_LIMIT = (
    "hint: {key} is in watts: a number above 0 and at most 10,000; leave the field empty when it is not known."
)


def run_curve(cli, tmp_path: Path, text: str):
    curve = tmp_path / "c.csv"
    curve.write_text(text)
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    return cli(*simulate(prices, curve, "-o", "json")), curve


@pytest.mark.parametrize("watts", ["inf", "nan", "-inf", "-300", "0", "1e300", "10001"])
def test_a_largest_limit_that_is_no_gpu_limit_is_refused_at_its_line(cli, tmp_path, watts):
    text = MAX_HEADER + f"x,w,0.5,0.96,0.6,{watts}\nx,w,1.0,1.0,1.0,{watts}\n"
    result, curve = run_curve(cli, tmp_path, text)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {curve}:2: bad curve row: max_power_limit_w is {watts}, which is not a GPU's power limit." in (
        result.stderr
    )
    assert NOT_A_LIMIT.format(key="max_power_limit_w") in result.stderr


def test_a_negative_power_limit_is_refused_at_its_line(cli, tmp_path):
    result, curve = run_curve(cli, tmp_path, LIMIT_HEADER + "x,w,0.5,0.96,0.6,150\nx,w,1.0,1.0,1.0,-150\n")
    assert result.exit_code == 2, result.stderr
    assert f"{curve}:3: bad curve row: power_limit_w is -150, which is not a GPU's power limit." in result.stderr
    assert NOT_A_LIMIT.format(key="power_limit_w") in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MAX_HEADER + "x,w,0.5,0.96,0.6,300\nx,w,1.0,1.0,1.0,400\n",
            ":3: bad curve row: x w has a largest power limit of 400 W here but 300 W on an earlier row.",
        ),
        (
            LIMIT_HEADER + "x,w,0.5,0.96,0.6,200\nx,w,1.0,1.0,1.0,300\n",
            ":3: bad curve row: x w has a largest power limit of 300 W here but 400 W on an earlier row.",
        ),
        (
            BOTH_HEADER + "x,w,0.5,0.96,0.6,200,300\nx,w,1.0,1.0,1.0,300,300\n",
            ":2: bad curve row: power_limit_w 200 at pl_frac 0.5 is a largest limit of 400 W, but max_power_limit_w is"
            " 300.",
        ),
    ],
)
def test_rows_that_disagree_on_the_largest_limit_are_refused(cli, tmp_path, text, message):
    result, curve = run_curve(cli, tmp_path, text)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {curve}{message}" in result.stderr
    assert "\nhint: " in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        MAX_HEADER + "x,w,0.5,0.96,0.6,300\nx,w,1.0,1.0,1.0,300.0\nx,v,1.0,1.0,1.0,400\n",  # another workload: its own
        BOTH_HEADER + "x,w,0.333,0.96,0.6,100,300\nx,w,1.0,1.0,1.0,,300\n",  # pl_frac rounded; a field left empty
    ],
)
def test_consistent_watts_are_accepted(cli, tmp_path, text):
    result, _ = run_curve(cli, tmp_path, text)
    assert result.exit_code == 0, result.stderr
    assert result.json()["gpu"] == "x"
