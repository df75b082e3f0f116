"""`power simulate` says when `optimize` had no price to value throughput on, and so asked for full power.

An `optimize` interval prices throughput on its reference sample: the known prices of the last `history_hours`
(and, day-ahead, those published ahead). When that sample is empty the multiplier is infinite and the interval
runs at full power, saving nothing. Two files cause it: one mixing hourly and 15-minute rows (its usual interval
is 15 minutes, so a `history_hours` of 0.5 passes the check against the interval, yet holds no price in the
hourly part), and one whose history holds only unknown prices while `stale_after_minutes` is longer than the
history (not stale, so no fail-safe). The replay counts those intervals (`no_reference_intervals`) and one warning
says so, under -q too; the rest of the output is unchanged.
"""

from __future__ import annotations

from pathlib import Path

from power_data import HOUR, START_S, curve_csv_text, series, toy_curve, write_prices
from test_power_simulate_cli import simulate_args

from factoryctl.power.policy.config import parse_policy
from factoryctl.power.simulator import simulate

#: Four hourly rows, then twelve 15-minute ones: the median spacing (the usual interval) is 15 minutes.
MIXED = series([50.0, 60.0, 70.0, 80.0]) + series([90.0 + i for i in range(12)], START_S + 4 * HOUR, 900)
#: Hourly rows whose prices at 02:00-04:00 are unknown: with two hours of history, 04:00 and 05:00 have none.
UNKNOWN = series([50.0, 60.0, None, None, None, 70.0, 80.0, 90.0, 100.0, 110.0])


def _run(cli, tmp_path: Path, points, policy_text: str, *extra: str):
    prices = write_prices(tmp_path / "prices.csv", points)
    curve = tmp_path / "curves.csv"
    curve.write_text(curve_csv_text())
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    args = simulate_args(prices, curve, "--price-visibility", "realtime", "--policy", str(policy), "-o", "json")
    return cli(*extra, *args), policy


def test_a_mixed_file_with_a_short_history_warns_of_the_intervals_run_at_full_power(cli, tmp_path):
    result, policy = _run(cli, tmp_path, MIXED, "policy: optimize\nhistory_hours: 0.5\n")
    assert result.exit_code == 0, result.stderr
    assert result.json()["no_reference_intervals"] == 4
    assert result.stderr == (
        "factoryctl: warning: 4 of 16 intervals had no known price in the history_hours before them (0.5 in"
        f" {policy}), so optimize could not value throughput there and asked for full power; give history_hours"
        " longer than the longest gap between known prices in the file.\n"
    )


def test_the_warning_stays_under_quiet(cli, tmp_path):
    policy_text = "policy: optimize\nhistory_hours: 2\nstale_after_minutes: 600\n"
    result, policy = _run(cli, tmp_path, UNKNOWN, policy_text, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.json()["no_reference_intervals"] == 2
    assert result.stderr == (
        "factoryctl: warning: 2 of 10 intervals had no known price in the history_hours before them (2 in"
        f" {policy}), so optimize could not value throughput there and asked for full power; give history_hours"
        " longer than the longest gap between known prices in the file.\n"
    )


def test_a_history_long_enough_counts_none_and_says_nothing(cli, tmp_path):
    result, _ = _run(cli, tmp_path, UNKNOWN, "policy: optimize\nhistory_hours: 4\nstale_after_minutes: 600\n")
    assert result.exit_code == 0, result.stderr
    assert result.json()["no_reference_intervals"] == 0
    assert result.stderr == ""


def test_the_replay_counts_the_intervals_and_tiers_has_none():
    curve, gpu = toy_curve()
    optimize = parse_policy({"policy": "optimize", "history_hours": 0.5}, gpu, max_throughput_loss=0.05)
    counted = simulate(MIXED, curve, gpu, optimize, "realtime", 0.05)
    assert counted.no_reference_intervals == 4
    assert [a.power_limit_frac for a in counted.actions[1:5]] == [1.0] * 4  # the four with no reference price
    tiers = parse_policy({"policy": "tiers", "tiers": [{"above_per_mwh": 55, "cap_pct": 75}]}, gpu)
    assert simulate(MIXED, curve, gpu, tiers, "realtime", 0.05).no_reference_intervals == 0
