"""A row with more fields than its header, and a number or time that cannot be read, are refused in our words.

A row longer than its header is almost always an unquoted decimal comma (`45,67`) or thousands separator; cutting it
to the header would silently read 45 for 45.67. So it is refused at file:line (exit 2) with a hint that numbers take a
decimal point, in price and curve files alike, and a value that is not a number or not a time is named with its
field and value, never in Python's words ("could not convert string to float", "day is out of range for month").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_price_files_cli import every_reader, simulate

HEADER = "timestamp_utc,price_per_mwh\n"
POINT_HINT = "hint: write numbers with a decimal point and no thousands separator: 45.67, not 45,67"
BAD_PRICES = {
    "decimal comma": (
        "2023-11-15T00:00:00Z,45,67\n",
        ":2: the price row has 3 fields but the header has 2, so a value holds an unquoted comma.",
        POINT_HINT,
    ),
    "thousands separator": (
        "2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,1,234.5\n",
        ":3: the price row has 3 fields but the header has 2, so a value holds an unquoted comma.",
        POINT_HINT,
    ),
    "quoted decimal comma": (
        '2023-11-15T00:00:00Z,"45,67"\n',
        ":2: bad price row: price_per_mwh is '45,67', which is not a number.",
        POINT_HINT,
    ),
    "word": (
        "2023-11-15T00:00:00Z,cheap\n",
        ":2: bad price row: price_per_mwh is 'cheap', which is not a number.",
        "hint: a prices file has the header timestamp_utc,price_per_mwh",
    ),
    "no date": (
        "yesterday,10\n",
        ":2: bad price row: timestamp_utc is 'yesterday', which is not an ISO-8601 time.",
        "hint: write the start of each interval as e.g. 2023-01-01T00:00:00Z.",
    ),
    "no such day": (
        "2023-02-30T00:00:00Z,10\n",
        ":2: bad price row: timestamp_utc is '2023-02-30T00:00:00Z', which is not an ISO-8601 time (day is out of"
        " range for month).",
        "hint: write the start of each interval as e.g. 2023-01-01T00:00:00Z.",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_PRICES))
def test_a_price_field_that_cannot_be_read_is_refused_in_our_words(cli, tmp_path, curve_file, name):
    rows, message, hint = BAD_PRICES[name]
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + rows)
    for argv in every_reader(prices, curve_file):
        result = cli(*argv)
        assert result.exit_code == 2, (argv, result.stdout, result.stderr)
        assert f"factoryctl: {prices}{message}\n{hint}" in result.stderr, argv
        assert result.stdout == ""


CURVE_HEADER = "gpu,workload,pl_frac,throughput_rel,power_rel\n"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "x,w,0,5,0.8,0.6\n",
            ":3: the curve row has 6 fields but the header has 5, so a value holds an unquoted comma.",
        ),
        ('x,w,"0,5",0.8,0.6\n', ":3: bad curve row: pl_frac is '0,5', which is not a number."),
    ],
)
def test_a_curve_row_with_a_decimal_comma_is_refused(cli, tmp_path, row, message):
    curve = tmp_path / "c.csv"
    curve.write_text(CURVE_HEADER + "x,w,1.0,1.0,1.0\n" + row)
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n")
    argv = simulate(prices, curve)
    argv[argv.index("tgpu")] = "x"
    argv[argv.index("bench/toy")] = "w"
    result = cli(*argv)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {curve}{message}\n{POINT_HINT}" in result.stderr


def test_extra_header_columns_are_still_ignored(cli, tmp_path: Path):
    prices = tmp_path / "p.csv"
    prices.write_text("timestamp_utc,price_per_mwh,zone\n2023-11-15T00:00:00Z,45.67,FR\n")
    result = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["price_per_mwh"] == 45.67


def test_a_trailing_comma_is_not_an_extra_field(cli, tmp_path: Path):
    """Rows ending in `,` (a spreadsheet export) were refused as "a value holds an unquoted comma"."""
    prices = tmp_path / "p.csv"
    prices.write_text("timestamp_utc,price_per_mwh\n2023-11-15T00:00:00Z,45.67,\n2023-11-15T01:00:00Z,12.5, \n")
    result = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [i["price_per_mwh"] for i in result.json()["items"]] == [45.67, 12.5]


def test_a_decimal_comma_under_a_header_with_a_trailing_comma_is_refused(cli, tmp_path: Path):
    """With `timestamp_utc,price_per_mwh,` as header, `45,67` filled the empty column and was read as 45."""
    prices = tmp_path / "p.csv"
    prices.write_text("timestamp_utc,price_per_mwh,\n2023-11-15T00:00:00Z,45,67\n")
    result = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert result.exit_code == 2
    assert f"factoryctl: {prices}:2: the price row has a value under the header's empty column" in result.stderr
    fine = tmp_path / "fine.csv"
    fine.write_text("timestamp_utc,price_per_mwh,\n2023-11-15T00:00:00Z,45.67,\n")
    assert cli("price", "history", "--prices", str(fine), "-o", "json").exit_code == 0
