"""`price history` lists the price in force at --since, not only the rows that start after it.

Rows are listed by their start time, so a window inside one hourly row (10:15 to 10:45) used to list nothing.
The row whose interval covers --since comes first, held for its own interval as `price show` holds it: a row before
a gap, or the file's last row, is not in force past that interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from power_data import HOUR, START_S, series, write_prices

from factoryctl.model.power import iso_utc_seconds

QUARTER = 900


def at(offset_s: int) -> str:
    """START_S + `offset_s` as an ISO-8601 time (START_S is 2023-11-15T00:00:00Z)."""
    return iso_utc_seconds(START_S + offset_s)


def history(cli: Any, prices: Path, *window: str) -> list[tuple[str, float | None]]:
    """(timestamp_utc, price_per_mwh) of each item of `price history -o json` over `window` (--since/--until)."""
    result = cli("price", "history", "--prices", str(prices), *window, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [(i["timestamp_utc"], i["price_per_mwh"]) for i in result.json()["items"]]


def test_a_window_inside_one_hourly_row_lists_that_row_in_json_and_table(cli, tmp_path):
    prices = write_prices(tmp_path / "hourly.csv", series([50.0, 60.0, 70.0, None]))
    window = ("--since", at(HOUR + 15 * 60), "--until", at(HOUR + 45 * 60))
    assert history(cli, prices, *window) == [(at(HOUR), 60.0)]
    table = cli("price", "history", "--prices", str(prices), *window)
    assert table.exit_code == 0, table.stderr
    assert [line.split() for line in table.stdout.splitlines()[1:]] == [[at(HOUR), "60"]]
    shown = cli("price", "show", "--prices", str(prices), "--at", at(HOUR + 15 * 60), "-o", "json")
    assert shown.json()["timestamp_utc"] == at(HOUR)  # the row `price show` gives for --since


def test_a_window_over_several_rows_adds_only_the_row_in_force_at_its_start(cli, tmp_path):
    prices = write_prices(tmp_path / "hourly.csv", series([50.0, 60.0, 70.0, None]))
    mid_row = history(cli, prices, "--since", at(HOUR + 15 * 60), "--until", at(3 * HOUR + 30 * 60))
    assert mid_row == [(at(HOUR), 60.0), (at(2 * HOUR), 70.0), (at(3 * HOUR), None)]
    on_the_hour = history(cli, prices, "--since", at(HOUR), "--until", at(3 * HOUR + 30 * 60))
    assert on_the_hour == mid_row  # a --since on a row's start adds nothing before it
    assert history(cli, prices, "--since", at(HOUR + 15 * 60)) == mid_row
    assert history(cli, prices, "--until", at(HOUR + 15 * 60)) == [(at(0), 50.0), (at(HOUR), 60.0)]
    assert history(cli, prices) == [(at(h * HOUR), p) for h, p in enumerate([50.0, 60.0, 70.0, None])]


def test_a_row_is_not_in_force_past_its_interval_before_a_gap_or_at_the_end(cli, tmp_path):
    points = series([50.0, 60.0, 70.0, 80.0])
    prices = write_prices(tmp_path / "gap.csv", points[:2] + series([90.0], start_s=START_S + 4 * HOUR))
    in_gap = ("--since", at(2 * HOUR + 30 * 60))
    assert history(cli, prices, *in_gap, "--until", at(3 * HOUR)) == []
    assert history(cli, prices, *in_gap) == [(at(4 * HOUR), 90.0)]
    assert history(cli, prices, "--since", at(4 * HOUR + 59 * 60)) == [(at(4 * HOUR), 90.0)]  # the last row's hour
    assert history(cli, prices, "--since", at(5 * HOUR)) == []


def test_quarter_hour_rows_and_a_file_that_ends_hourly(cli, tmp_path):
    """In a 15-minute file a row lasts its quarter hour; in one that ends `...00:45, 01:00, 02:00` the 01:00 row
    lasts an hour (factoryctl.power.intervals), so --since 01:30 starts with it."""
    quarters = [40.0, 41.0, 42.0, 43.0]
    prices = write_prices(tmp_path / "q.csv", series(quarters, step_s=QUARTER))
    assert history(cli, prices, "--since", at(20 * 60), "--until", at(25 * 60)) == [(at(QUARTER), 41.0)]
    ends = series(quarters, step_s=QUARTER) + series([80.0, 90.0], start_s=START_S + HOUR)
    mixed = write_prices(tmp_path / "mixed.csv", ends)
    assert history(cli, mixed, "--since", at(HOUR + 30 * 60)) == [(at(HOUR), 80.0), (at(2 * HOUR), 90.0)]
