"""An explicitly empty price field is an unknown price, not a bad row.

The rows a prices file may not have (none, shorter than the header, ...) are refused in test_price_files_cli.py.
"""

from __future__ import annotations

HEADER = "timestamp_utc,price_per_mwh\n"


def test_an_empty_price_field_stays_an_unknown_price(cli, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,\n")
    result = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["price_per_mwh"] for item in result.json()["items"]] == [10.0, None]
