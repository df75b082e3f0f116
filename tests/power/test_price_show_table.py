"""`price show` at a time the file skips says there is a gap there (not that the file ends), and price tables show
prices as the file wrote them (to the cent and beyond, large values not rounded to integers); JSON stays exact.
"""

from __future__ import annotations

from pathlib import Path

HEADER = "timestamp_utc,price_per_mwh\n"


def write(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "p.csv"
    path.write_text(HEADER + rows)
    return path


def test_a_time_in_a_gap_is_reported_as_a_gap_not_as_the_end_of_the_file(cli, tmp_path):
    rows = "2023-01-01T03:00:00Z,20\n2023-01-01T04:00:00Z,10\n2023-01-01T05:00:00Z,-50\n2023-01-01T08:00:00Z,30\n"
    prices = write(tmp_path, rows)  # hourly (the median spacing), with 06:00-08:00 missing
    result = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T06:30:00Z", "-o", "json")
    assert result.exit_code == 0, result.stderr
    item = result.json()
    assert (item["timestamp_utc"], item["price_per_mwh"], item["stale"]) == ("2023-01-01T05:00:00Z", -50.0, True)
    assert (
        f"factoryctl: {prices} has no price for 2023-01-01T06:30:00Z: the file has a gap from 2023-01-01T06:00:00Z"
        " to 2023-01-01T08:00:00Z; the price shown, of the 3600 s interval starting 2023-01-01T05:00:00Z, is stale.\n"
    ) in result.stderr
    assert "hint: the feed missed these intervals" in result.stderr
    assert " end with " not in result.stderr
    after = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T09:30:00Z", "-o", "json")
    assert f"the prices in {prices} end with the 3600 s interval starting 2023-01-01T08:00:00Z" in after.stderr


PRICES = ("92.01", "96.75", "1234.56", "0.004", "-12.345", "123456.7", "10", "-3")


def test_price_tables_show_what_the_file_says(cli, tmp_path):
    rows = "".join(f"2023-01-01T{hour:02d}:00:00Z,{price}\n" for hour, price in enumerate(PRICES))
    prices = write(tmp_path, rows + "2023-01-01T08:00:00Z,\n")
    table = cli("price", "history", "--prices", str(prices))
    assert table.exit_code == 0, table.stderr
    assert [line.split()[1] for line in table.stdout.splitlines()[1:]] == [*PRICES, "-"]
    shown = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T00:30:00Z", "--no-header")
    assert shown.stdout.split()[1] == "92.01"
    exact = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert [i["price_per_mwh"] for i in exact.json()["items"]] == [*(float(p) for p in PRICES), None]


def test_history_until_before_since_is_a_usage_error(cli, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text("timestamp_utc,price_per_mwh\n2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,20\n")
    r = cli(
        "price",
        "history",
        "--prices",
        str(prices),
        "--since",
        "2023-11-15T01:00:00Z",
        "--until",
        "2023-11-15T00:30:00Z",
    )
    assert r.exit_code == 2
    assert "is not after --since" in r.stderr
