"""`price show` at an interval whose price is unknown (empty or NaN) says `stale: true`, with a sentence on stderr.

Scripts are told to check `stale` before treating the price as current; a row with no price is no current price, so
it must not read `stale: false`. The row is still shown (price null, `-` in the table) and the exit status stays 0.
"""

from __future__ import annotations

ROWS = "timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,45\n2023-01-01T01:00:00Z,NaN\n2023-01-01T02:00:00Z,50\n"


def test_an_unknown_price_is_shown_stale_with_a_reason(cli, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text(ROWS)
    shown = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T01:30:00Z", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json() == {
        "timestamp_utc": "2023-01-01T01:00:00Z",
        "price_per_mwh": None,
        "source": "csv",
        "age_s": 5400,
        "stale": True,
    }
    assert (
        f"factoryctl: {prices} has the interval starting 2023-01-01T01:00:00Z but its price is unknown (empty or NaN),"
        " so it is shown as stale; the newest known price is of 2023-01-01T00:00:00Z.\n"
        "hint: the feed missed this price; age_s is the age of the newest known price.\n"
    ) == shown.stderr
    table = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T01:30:00Z", "--no-header")
    assert table.stdout.split() == ["2023-01-01T01:00:00Z", "-", "5400", "yes"]


def test_a_known_price_in_its_interval_is_not_stale(cli, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text(ROWS)
    shown = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T02:30:00Z", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["stale"] is False
    assert shown.stderr == ""
