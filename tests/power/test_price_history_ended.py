"""`price history` over a range the prices stop short of says so on stderr, as `price show` marks a price stale.

A cron job running `price history --since 24h` on a feed that stopped used to get only the header, exit 0, and
nothing to tell it from a quiet day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def two_hours(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text("timestamp_utc,price_per_mwh\n2023-06-01T00:00:00Z,50\n2023-06-01T01:00:00Z,60\n")
    return path


def test_a_range_past_the_last_price_is_listed_with_a_warning(cli: Any, tmp_path: Path) -> None:
    prices = two_hours(tmp_path)
    result = cli("price", "history", "--prices", str(prices), "--since", "2023-06-01T01:30Z", "--until", "2023-06-02")
    assert result.exit_code == 0, result.stderr
    assert "2023-06-01T01:00:00Z" in result.stdout
    assert result.stderr.startswith(
        f"factoryctl: warning: the prices in {prices} end at 2023-06-01T02:00:00Z, before 2023-06-02T00:00:00Z"
    )
    assert "hint: update the prices file" in result.stderr


def test_a_recent_window_on_a_stopped_feed_warns_even_with_nothing_to_list(cli: Any, tmp_path: Path) -> None:
    result = cli("price", "history", "--prices", str(two_hours(tmp_path)), "--since", "24h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"] == []
    assert "end at 2023-06-01T02:00:00Z, before" in result.stderr


def test_a_range_the_prices_cover_and_the_whole_file_list_quietly(cli: Any, tmp_path: Path) -> None:
    prices = two_hours(tmp_path)
    covered = cli(
        "price", "history", "--prices", str(prices), "--since", "2023-06-01T00:30Z", "--until", "2023-06-01T02:00Z"
    )
    assert (covered.exit_code, covered.stderr) == (0, "")
    whole = cli("price", "history", "--prices", str(prices))
    assert (whole.exit_code, whole.stderr) == (0, "")
    assert whole.stdout.count("2023-06-01T") == 2
