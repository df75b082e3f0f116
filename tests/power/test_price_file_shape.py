"""A prices file without rows, or with a row shorter than its header, is one usage error at file:line everywhere.

`price show`, `price history` and `power simulate` read prices through one loader (docs/power.md), so each refuses
these files with the same sentence, hint and exit status 2. An explicitly empty price field stays an unknown price.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = "timestamp_utc,price_per_mwh\n"
HINT = "hint: a prices file has the header timestamp_utc,price_per_mwh and one row per interval, in time order"


def every_reader(prices: Path, curve: Path) -> list[list[str]]:
    return [
        ["price", "show", "--prices", str(prices), "--at", "2023-11-15T05:00:00Z"],
        ["price", "history", "--prices", str(prices)],
        [
            "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
            "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "realtime",
        ],
    ]  # fmt: skip


BAD = {
    "header only": (HEADER, ":2: the prices file has a header but no rows."),
    "short row": (
        HEADER + "2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z\n2023-11-15T02:00:00Z,30\n",
        ":3: the price row has no price_per_mwh field (fewer fields than the header).",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_file_without_rows_or_with_a_short_row_is_the_same_usage_error_everywhere(cli, tmp_path, curve_file, name):
    text, message = BAD[name]
    prices = tmp_path / "p.csv"
    prices.write_text(text)
    for argv in every_reader(prices, curve_file):
        result = cli(*argv)
        assert result.exit_code == 2, (argv, result.stdout, result.stderr)
        assert f"factoryctl: {prices}{message}\n" in result.stderr, argv
        assert HINT in result.stderr, argv


def test_an_empty_price_field_stays_an_unknown_price(cli, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,\n")
    result = cli("price", "history", "--prices", str(prices), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["price_per_mwh"] for item in result.json()["items"]] == [10.0, None]


def test_a_short_curve_row_names_its_line(cli, tmp_path, curve_file):
    curve = tmp_path / "c.csv"
    curve.write_text(curve_file.read_text() + "TGPU,400,x/y,32\n")
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "2023-11-15T00:00:00Z,10\n")
    result = cli(*every_reader(prices, curve)[2])
    assert result.exit_code == 2
    assert f"{curve}:16: the curve row has no pl_frac, throughput_rel, power_rel field" in result.stderr
