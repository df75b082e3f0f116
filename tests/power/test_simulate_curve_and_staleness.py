"""Curves no GPU could produce, a loss budget a curve cannot meet, and a policy that is stale throughout.

A `power_rel` or `throughput_rel` of 0 or less (a capped GPU still draws power and works) or above twice the largest
limit's is refused at file:line; a curve that never reaches 1 - D is refused (no blind setting exists and optimize
could not keep its promise); most intervals stale is said on stderr with its cause, the results unchanged. Also:
a ramp lands on the same limits as a cap (0.7, not 0.7000000000000001), so equal limits are not counted as changes.
"""

from __future__ import annotations

import csv

import pytest
from curve_rows import HEADER, assert_curve_row_refused, simulate
from power_data import SERIES, series, write_prices
from test_power_simulate_cli import simulate_args


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("x,w,0.5,0.8,-0.6\nx,w,1.0,1.0,1.0\n", ":2: bad curve row: power_rel -0.6 is outside (0, 2]"),
        ("x,w,0.5,0.8,0\nx,w,1.0,1.0,1.0\n", ":2: bad curve row: power_rel 0 is outside (0, 2]"),
        ("x,w,0.5,0.8,0.6\nx,w,1.0,1.0,2.5\n", ":3: bad curve row: power_rel 2.5 is outside (0, 2]"),
        ("x,w,0.5,-0.1,0.6\nx,w,1.0,1.0,1.0\n", ":2: bad curve row: throughput_rel -0.1 is outside (0, 2]"),
        ("x,w,0.5,0.8,0.6\nx,w,1.0,3,1.0\n", ":3: bad curve row: throughput_rel 3 is outside (0, 2]"),
    ],
)
def test_a_physically_impossible_curve_row_is_refused_at_its_line(cli, tmp_path, rows, message):
    assert_curve_row_refused(cli, tmp_path, rows, message)


def test_a_curve_that_cannot_reach_one_minus_d_is_refused(cli, tmp_path):
    curve = tmp_path / "c.csv"
    curve.write_text(HEADER + "x,w,0.5,0.8,0.6\n")
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    result = cli(*simulate(prices, curve))
    assert result.exit_code == 2, result.stderr
    assert (
        "factoryctl: the curve x w never reaches throughput_rel 0.95 (1 - D for D = 0.05): its highest is 0.8, so no"
        " power limit keeps the loss within D.\nhint: check that the curve measures the largest limit (pl_frac 1,"
        " throughput_rel near 1), or raise --max-throughput-loss to at least 0.2.\n"
    ) in result.stderr
    assert result.stdout == ""
    enough = simulate(prices, curve)
    enough[enough.index("0.05")] = "0.2"
    assert cli(*enough).exit_code == 0


def test_a_policy_stale_throughout_is_said_on_stderr_with_its_cause(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](48)))
    policy = tmp_path / "st30.yaml"
    policy.write_text("policy: optimize\nstale_after_minutes: 30\n")
    args = simulate_args(prices, curve_file, "--price-visibility", "realtime", "--policy", str(policy), "-o", "json")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert result.json()["stale_intervals"] == 48
    assert result.stderr == (
        "factoryctl: 48 of 48 intervals were stale, so the policy ran at its fail-safe limit there:"
        f" stale_after_minutes is 30 in {policy}, shorter than the prices' 60-minute interval, and in realtime the"
        " newest known price is always one interval old.\n"
        "hint: set stale_after_minutes above 60 in the policy file (the default is 120).\n"
    )
    policy.write_text("policy: optimize\nstale_after_minutes: 90\n")
    fresh = cli(*args)
    assert fresh.exit_code == 0, fresh.stderr
    assert fresh.json()["stale_intervals"] == 1  # the first: in realtime no price is known yet
    assert fresh.stderr == ""


def test_a_file_of_unknown_prices_says_why_every_interval_was_stale(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series([None] * 6))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    assert "factoryctl: 6 of 6 intervals were stale" in result.stderr
    assert "their prices were unknown, or missing for longer than stale_after_minutes (120 by default)" in result.stderr


def test_a_ramp_reaches_the_same_limit_as_a_cap_and_equal_limits_are_no_change(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series([10.0, 200.0, 200.0, 200.0, 60.0, 60.0]))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "policy: tiers\nramp_pct: 10\ntiers:\n  - above_per_mwh: 50\n    cap_pct: 70\n"
        "  - above_per_mwh: 100\n    cap_pct: 50\n"
    )
    schedule = tmp_path / "schedule.csv"
    args = simulate_args(prices, curve_file, "--price-visibility", "realtime", "--policy", str(policy), "-o", "json")
    result = cli(*args, "--schedule-out", str(schedule))
    assert result.exit_code == 0, result.stderr
    with schedule.open(newline="") as rows:
        limits = [row["power_limit_frac"] for row in csv.DictReader(rows)]
    assert limits == ["1.0", "1.0", "0.9", "0.8", "0.7", "0.7"]
    assert result.json()["limit_changes"] == 3


def test_limits_closer_than_the_engines_epsilon_are_not_counted_as_changes():
    from factoryctl.cli.power import _document
    from factoryctl.model.power import PowerAction
    from factoryctl.power.policy.config import OptimizePolicy
    from factoryctl.power.simulator import Score, SeriesReport, SimulationResult

    fracs = [1.0, 0.7, 0.7 + 1e-12, 0.7, 0.8]
    actions = tuple(PowerAction(1_700_006_400 + 3600 * i, f, "ladder", False, 10.0) for i, f in enumerate(fracs))
    result = SimulationResult(actions, Score(10.0, 9.0, 10.0, 1.0), 5.0, 20.0, SeriesReport(3600, 0, 0, ()))
    document = _document(result, OptimizePolicy(0.05), {"max_throughput_loss": 0.05})
    assert document["limit_changes"] == 2
