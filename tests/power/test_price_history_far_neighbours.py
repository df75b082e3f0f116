"""`price history` and `price show` judge each row from the same neighbours, however far away in time they are.

How long a row lasts depends on the rows before it (their interval) and on the two after it
(factoryctl.power.intervals). `price history` used to fetch only two days around its window, so after a feed
outage of more than two days it judged the first row after it without the 15-minute rows before the outage (which
`price show` sees), and a row before such an outage without the row after it: the two commands disagreed on
whether a row was in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from power_data import HOUR, START_S, series, write_prices

from factoryctl.model.power import iso_utc_seconds

QUARTER = 900
DAY = 86400


def at(offset_s: int) -> str:
    """START_S + `offset_s` as an ISO-8601 time (START_S is 2023-11-15T00:00:00Z)."""
    return iso_utc_seconds(START_S + offset_s)


def history(cli: Any, prices: Path, since: str, until: str) -> list[str]:
    """The timestamp_utc of each row `price history -o json` lists from `since` to `until`."""
    result = cli("price", "history", "--prices", str(prices), "--since", since, "--until", until, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [item["timestamp_utc"] for item in result.json()["items"]]


def shown(cli: Any, prices: Path, moment: str) -> tuple[str, bool]:
    """(timestamp_utc, stale) of `price show --at moment -o json`."""
    result = cli("price", "show", "--prices", str(prices), "--at", moment, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return result.json()["timestamp_utc"], result.json()["stale"]


def assert_commands_agree(cli: Any, prices: Path, offsets_s: list[int]) -> None:
    """At each moment, history over one second lists the row `price show` gives, unless show calls it stale."""
    for offset in offsets_s:
        row, stale = shown(cli, prices, at(offset))
        assert history(cli, prices, at(offset), at(offset + 1)) == ([] if stale else [row]), at(offset)


def test_the_first_row_after_an_outage_of_days_is_judged_from_the_rows_before_it(cli, tmp_path):
    """Quarter hours, three days without rows, then `00:00, 01:00, 01:15, 01:30`: the 00:00 row lasts a quarter
    hour (its run before the outage), and 00:15 to 01:00 is a gap; history used to see an hourly first row."""
    after = START_S + 3 * DAY
    points = series([40.0, 41.0, 42.0, 43.0], step_s=QUARTER) + series([80.0], start_s=after)
    points += series([81.0, 82.0, 83.0], start_s=after + HOUR, step_s=QUARTER)
    prices = write_prices(tmp_path / "outage.csv", points)
    assert shown(cli, prices, at(3 * DAY + 30 * 60)) == (at(3 * DAY), True)
    assert history(cli, prices, at(3 * DAY + 30 * 60), at(3 * DAY + 45 * 60)) == []
    assert history(cli, prices, at(3 * DAY + 10 * 60), at(3 * DAY + HOUR)) == [at(3 * DAY)]
    assert_commands_agree(cli, prices, [3 * DAY + m * 60 for m in (0, 14, 15, 30, 59, 60, 75, 104, 105)])


def test_a_row_before_an_outage_of_days_is_judged_with_the_row_after_it(cli, tmp_path):
    """`...00:30, 00:45, 02:45`, then a row five days later: 00:45 to 02:45 is shorter than the spacing after it,
    so the 00:45 row lasts two hours; history used to miss the far row and call 00:45 to 02:45 a gap."""
    points = series([40.0, 41.0, 42.0, 43.0], step_s=QUARTER) + series([50.0], start_s=START_S + 2 * HOUR + 45 * 60)
    points += series([60.0], start_s=START_S + 7 * DAY)
    prices = write_prices(tmp_path / "before_outage.csv", points)
    assert shown(cli, prices, at(HOUR + 30 * 60)) == (at(45 * 60), False)
    assert history(cli, prices, at(HOUR + 30 * 60), at(HOUR + 45 * 60)) == [at(45 * 60)]
    assert_commands_agree(cli, prices, [m * 60 for m in (44, 45, 60, 90, 164, 165, 200)])
