"""Price files whose interval changes (hourly, then 15-minute, as EPEX day-ahead on 2025-10-01) or has holes.

Each row weighs what it lasts: cost is price/MWh x power_rel x hours and loss a time-weighted mean, so a file
that spells an hour as four equal 15-minute rows scores exactly as the hourly one, and gaps are counted in the
interval of the rows around them rather than in the file's median spacing.
"""

from __future__ import annotations

import pytest
from power_data import HOUR, START_S, daily_sine, series

from factoryctl.model.power import PricePoint
from factoryctl.power.intervals import row_intervals
from factoryctl.power.policy.config import OptimizePolicy, parse_policy
from factoryctl.power.simulator import inspect_series, simulate

QUARTER = 900
TIERS = {"policy": "tiers", "tiers": [{"above_per_mwh": 150, "cap_pct": 75}]}


def hourly_then_quarters(hourly: list[float], quarterly: list[float]) -> list[PricePoint]:
    """`hourly` prices one an hour from START_S, then `quarterly` ones every 15 minutes."""
    first = series(hourly)
    return first + series(quarterly, start_s=START_S + len(hourly) * HOUR, step_s=QUARTER)


def test_each_row_lasts_until_the_next_one_across_a_change_of_resolution():
    times = [p.timestamp_s for p in hourly_then_quarters([1.0] * 3, [1.0] * 3)]
    found = row_intervals(times)
    assert found.durations_s == (HOUR, HOUR, HOUR, QUARTER, QUARTER, QUARTER)
    assert found.missing_intervals == 0
    back = row_intervals([0, 900, 1800, 3600, 7200, 10800])  # 15-minute rows, then hourly ones
    assert back.durations_s == (900, 900, 1800, 3600, 3600, 3600)
    assert back.missing_intervals == 0


def test_a_gap_is_counted_in_the_interval_of_the_rows_around_it():
    hourly_hole = row_intervals([0, 3600, 3 * 3600, 4 * 3600])  # 01:00-02:00 missing
    assert hourly_hole.durations_s == (3600, 3600, 3600, 3600)
    assert hourly_hole.gaps == ((2 * 3600, 3 * 3600, 3600),)
    assert hourly_hole.missing_intervals == 1
    times = [p.timestamp_s for p in hourly_then_quarters([1.0] * 48, [1.0] * 8)]
    del times[50]  # one 15-minute row in the quarter-hour part
    quarter_hole = row_intervals(times)
    assert quarter_hole.missing_intervals == 1
    assert quarter_hole.durations_s[49] == QUARTER


def test_a_mixed_file_scores_as_the_same_prices_spelt_hour_by_hour(toy):
    """Hourly prices written as four 15-minute rows each: same cost, loss and saving, no invented gaps."""
    curve, gpu = toy
    policy = parse_policy(TIERS, gpu)
    hourly_prices = [200.0] * 24 * 7 + [100.0] * 24 * 7
    hourly = series(hourly_prices)
    mixed = hourly_then_quarters(hourly_prices[: 24 * 7], [p for p in hourly_prices[24 * 7 :] for _ in range(4)])
    a = simulate(hourly, curve, gpu, policy, "day-ahead", 0.05)
    b = simulate(mixed, curve, gpu, policy, "day-ahead", 0.05)
    assert b.series.missing_intervals == 0
    assert b.score.baseline_cost == pytest.approx(a.score.baseline_cost)
    assert b.score.cost == pytest.approx(a.score.cost)
    assert b.score.throughput_loss_pct == pytest.approx(a.score.throughput_loss_pct)
    assert b.score.saving_pct == pytest.approx(a.score.saving_pct)
    assert b.bound_saving_pct == pytest.approx(a.bound_saving_pct)


def test_cost_is_money_not_price_times_rows(toy):
    """The same prices every 15 minutes or every hour cost the same: price/MWh x MW x hours."""
    curve, gpu = toy
    prices = daily_sine(48)
    hourly = simulate(series(prices), curve, gpu, OptimizePolicy(0.05), "day-ahead", 0.05)
    quarters = series([p for p in prices for _ in range(4)], step_s=QUARTER)
    fine = simulate(quarters, curve, gpu, OptimizePolicy(0.05), "day-ahead", 0.05)
    assert fine.score.baseline_cost == pytest.approx(hourly.score.baseline_cost)
    assert hourly.score.baseline_cost == pytest.approx(sum(prices))  # 1 MW at the largest limit, one hour each


@pytest.mark.parametrize("budget", ["period", "rolling"])
@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
def test_optimize_keeps_its_budget_in_time_not_in_rows(toy, budget, visibility):
    """Cheap hourly rows then expensive 15-minute ones: a per-row budget would overspend in time."""
    curve, gpu = toy
    prices = daily_sine(24 * 7, mean=40.0)
    quarters = [p + 200.0 for p in daily_sine(24 * 3) for _ in range(4)]
    points = hourly_then_quarters(prices, quarters)
    policy = OptimizePolicy(0.05, loss_budget=budget)
    result = simulate(points, curve, gpu, policy, visibility, 0.05)
    assert result.score.throughput_loss_pct <= 5.0 + 1e-9


def test_the_usual_interval_is_still_the_median_spacing():
    report = inspect_series(hourly_then_quarters([1.0] * 4, [1.0] * 12))
    assert report.interval_s == QUARTER
    assert report.durations_s[:4] == (HOUR,) * 4


def test_price_show_and_the_dashboard_hold_an_hourly_row_for_its_hour(cli, tmp_path):
    """With 15-minute rows later in the file, an hourly row's price still holds for its whole hour: neither
    `price show` nor the dashboard calls it stale 15 minutes in (the file's median spacing is 15 minutes)."""
    from power_data import write_prices

    from factoryctl.live.grid import GridPrice
    from factoryctl.model.power import iso_utc_seconds

    prices = write_prices(tmp_path / "mixed.csv", hourly_then_quarters([80.0] * 4, [40.0] * 24))
    at = iso_utc_seconds(START_S + 2 * HOUR + 40 * 60)  # 40 minutes into the third hourly row
    shown = cli("price", "show", "--prices", str(prices), "--at", at, "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert (shown.json()["price_per_mwh"], shown.json()["stale"]) == (80.0, False)
    assert "stale" not in shown.stderr
    ended = cli("price", "show", "--prices", str(prices), "--at", iso_utc_seconds(START_S + 10 * HOUR), "-o", "json")
    assert ended.json()["stale"] is True  # past the last 15-minute row's quarter hour
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nnodes:\n  n1: {{transport: local}}\npower:\n  price_source: csv\n  prices: {prices}\n"
    )
    from factoryctl.config import parse_config

    grid = GridPrice(parse_config(config.read_text(), config, tmp_path / "state"))
    price, _ = grid.now(START_S + 2 * HOUR + 40 * 60, None)
    assert price is not None
    assert price.price_per_mwh == 80.0


def test_the_mean_limit_is_weighted_by_time_as_cost_and_loss_are(cli, tmp_path, curve_file):
    """A week capped (hourly rows at 200) and a week at full power (15-minute rows at 50): the mean limit is the
    middle of the two by time, not the quarter-hour rows' majority (it said 0.95 where 0.875 was right)."""
    import csv
    from datetime import datetime

    from power_data import write_prices
    from test_power_simulate_cli import simulate_args

    prices = write_prices(tmp_path / "mixed.csv", hourly_then_quarters([200.0] * 168, [50.0] * 168 * 4))
    policy = tmp_path / "tiers.yaml"
    policy.write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 150, cap_pct: 75}\n")
    out = tmp_path / "schedule.csv"
    args = simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "--policy", str(policy), "-o", "json")
    result = cli(*args, "--schedule-out", str(out))
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    times = [int(datetime.fromisoformat(r["timestamp_utc"].replace("Z", "+00:00")).timestamp()) for r in rows]
    lasts = row_intervals(times).durations_s
    fracs = [float(r["power_limit_frac"]) for r in rows]
    expected = sum(f * d for f, d in zip(fracs, lasts, strict=True)) / sum(lasts)
    assert result.json()["mean_power_limit_frac"] == pytest.approx(expected)
    assert expected == pytest.approx((max(fracs[:168]) + 1.0) / 2)  # one week capped, one at full power


def test_an_hourly_row_at_either_end_of_a_quarter_hour_file_is_a_change_of_resolution_not_a_gap():
    """The first and last spacing have no spacing on one side to repeat them: a whole hour on the hour is an hourly
    row there (`...00:45, 01:00, 02:00` ends with two hourly rows), as a third hourly row would have shown."""
    ends = row_intervals([0, 900, 1800, 2700, HOUR, 2 * HOUR])
    assert ends.durations_s == (QUARTER,) * 4 + (HOUR, HOUR)
    assert (ends.gaps, ends.missing_intervals) == ((), 0)
    with_third = row_intervals([0, 900, 1800, 2700, HOUR, 2 * HOUR, 3 * HOUR])
    assert with_third.durations_s[:6] == ends.durations_s
    starts = row_intervals([0, HOUR, HOUR + 900, HOUR + 1800])  # one hourly row, then 15-minute ones
    assert starts.durations_s == (HOUR, QUARTER, QUARTER, QUARTER)
    assert starts.gaps == ()
    five_minutes = row_intervals([0, 300, 600, 900, 1800])  # 5-minute rows ending with a 15-minute one
    assert (five_minutes.durations_s[-2:], five_minutes.gaps) == ((900, 900), ())


def test_a_hole_at_the_end_of_a_file_is_still_a_gap_when_its_spacing_tells_it():
    """A last 15-minute row after a lost hour (`...00:45, 02:00`) or off the hour (`...00:45, 01:45`) is a gap, and
    so are a first spacing of two hours and a hole in the middle, which the ends' rule never touches."""
    lost_hour = row_intervals([0, 900, 1800, 2700, 2 * HOUR])
    assert lost_hour.durations_s == (QUARTER,) * 5
    assert lost_hour.gaps == ((HOUR, 2 * HOUR, QUARTER),)
    assert lost_hour.missing_intervals == 4
    off_the_hour = row_intervals([0, 900, 1800, 2700, 2700 + HOUR])
    assert off_the_hour.gaps == ((HOUR, 2700 + HOUR, QUARTER),)
    assert off_the_hour.missing_intervals == 3
    hourly_late_start = row_intervals([0, 2 * HOUR, 3 * HOUR, 4 * HOUR])
    assert hourly_late_start.gaps == ((HOUR, 2 * HOUR, HOUR),)
    middle = row_intervals([0, 900, 1800, 2700, HOUR, 2 * HOUR, 2 * HOUR + 900, 2 * HOUR + 1800])
    assert middle.gaps == ((HOUR + 900, 2 * HOUR, QUARTER),)


def test_two_hourly_rows_ending_a_quarter_hour_file_score_and_show_as_hours(cli, tmp_path, toy):
    """`...00:45, 01:00, 02:00`: the simulator counts two full hours (as the same prices spelt as quarter hours) and
    no missing interval; `price show` and the dashboard hold the 01:00 price until 02:00."""
    from power_data import write_prices

    from factoryctl.config import parse_config
    from factoryctl.live.grid import GridPrice
    from factoryctl.model.power import iso_utc_seconds

    curve, gpu = toy
    quarters = [40.0, 41.0, 42.0, 43.0]
    points = series(quarters, step_s=QUARTER) + series([80.0, 90.0], start_s=START_S + HOUR)
    spelt = series(quarters + [80.0] * 4 + [90.0] * 4, step_s=QUARTER)
    a = simulate(points, curve, gpu, parse_policy(TIERS, gpu), "day-ahead", 0.05)
    b = simulate(spelt, curve, gpu, parse_policy(TIERS, gpu), "day-ahead", 0.05)
    assert a.series.missing_intervals == 0
    assert a.score.baseline_cost == pytest.approx(b.score.baseline_cost)
    assert a.score.baseline_cost == pytest.approx(sum(quarters) / 4 + 80.0 + 90.0)
    prices = write_prices(tmp_path / "ends_hourly.csv", points)
    at = iso_utc_seconds(START_S + HOUR + 30 * 60)
    shown = cli("price", "show", "--prices", str(prices), "--at", at, "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert (shown.json()["price_per_mwh"], shown.json()["stale"], shown.stderr) == (80.0, False, "")
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nnodes:\n  n1: {{transport: local}}\npower:\n  price_source: csv\n  prices: {prices}\n"
    )
    price, _ = GridPrice(parse_config(config.read_text(), config, tmp_path / "state")).now(START_S + 5400, None)
    assert price is not None
    assert price.price_per_mwh == 80.0
