"""A spreadsheet's empty rows (`,` or `,,`) in a price file are skipped, not read as a malformed row.

A prices file cut from a spreadsheet ends with the rows the user cleared, written as commas only; refusing them as
`timestamp_utc is ''` sent the user looking for a price that is not there.
"""

from __future__ import annotations

HEADER = "timestamp_utc,price_per_mwh\n"
RANGE = ("--since", "2023-11-15T00:00:00Z", "--until", "2023-11-15T03:00:00Z", "-o", "csv", "--no-header")


def test_rows_of_commas_and_spaces_are_skipped(cli, tmp_path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n,\n   \n , \n2023-11-15T01:00:00Z,20\n,,\n,\n")
    result = cli("price", "history", "--prices", str(prices), *RANGE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2023-11-15T00:00:00Z,10.0\n2023-11-15T01:00:00Z,20.0\n"


def test_a_row_with_one_field_filled_is_still_read_and_refused(cli, tmp_path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n,5\n")
    result = cli("price", "history", "--prices", str(prices), *RANGE)
    assert result.exit_code == 2
    assert f"factoryctl: {prices}:3: bad price row: timestamp_utc is ''" in result.stderr


def test_only_empty_rows_is_a_file_with_no_rows(cli, tmp_path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + ",\n,\n")
    result = cli("price", "history", "--prices", str(prices), *RANGE)
    assert result.exit_code == 2
    assert "the prices file has a header but no rows" in result.stderr
