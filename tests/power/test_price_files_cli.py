"""Bad price, curve and policy files are refused the same way by every command that reads them (exit 2, file:line).

One loader serves `price show`, `price history` and `power simulate`: a file one command accepts, none refuses, and
each refuses a bad one (no rows, a short row, bytes that are not UTF-8, a price out of range, time going back) with
the same sentence, hint and exit status.
Also `price history --since` in the forms every other `--since` takes, and `price show` on a feed that stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from power_data import series, write_prices

HEADER = b"timestamp_utc,price_per_mwh\n"


def simulate(prices: Path, curve: Path, *extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
        "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "realtime", *extra,
    ]  # fmt: skip


def every_reader(prices: Path, curve: Path) -> list[list[str]]:
    return [
        ["price", "show", "--prices", str(prices), "--at", "2023-11-15T05:00:00Z"],
        ["price", "history", "--prices", str(prices)],
        simulate(prices, curve),
    ]


ROWS = b"2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,20\n"
SHAPE_HINT = "hint: a prices file has the header timestamp_utc,price_per_mwh and one row per interval, in time order"
#: Each bad file, the start of what every reader says after `factoryctl: <file>` and, where checked, its hint.
BAD_FILES: dict[str, tuple[bytes, str, str | None]] = {
    "header only": (HEADER, ":2: the prices file has a header but no rows.\n", SHAPE_HINT),
    "short row": (
        HEADER + b"2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z\n2023-11-15T02:00:00Z,30\n",
        ":3: the price row has no price_per_mwh field (fewer fields than the header).\n",
        SHAPE_HINT,
    ),
    "latin1": (
        HEADER + ROWS + b"2023-11-15T02:00:00Z,\xff\n",
        ":4: the prices file is not UTF-8 text (byte 0xff).",
        None,
    ),
    "huge": (HEADER + ROWS + b"2023-11-15T02:00:00Z,1e308\n", ":4: bad price row: price 1e+308 is out of range", None),
    "infinite": (HEADER + b"2023-11-15T00:00:00Z,-inf\n" + ROWS, ":2: bad price row: infinite price", None),
    "duplicate": (
        HEADER + ROWS + b"2023-11-15T01:00:00Z,30\n",
        ":4: bad price row: 2023-11-15T01:00:00Z repeats or goes back; price timestamps must be strictly increasing",
        None,
    ),
    "backwards": (
        HEADER + b"2023-11-15T01:00:00Z,20\n2023-11-15T00:00:00Z,10\n",
        ":3: bad price row: 2023-11-15T00:00:00Z repeats or goes back",
        None,
    ),
    "field over the csv limit": (
        HEADER + ROWS + b'2023-11-15T02:00:00Z,"' + b"1" * 200_000 + b'"\n',
        ":4: cannot read this line as CSV (field larger than field limit (131072)).",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_price_file_is_the_same_usage_error_everywhere(cli, tmp_path, curve_file, name):
    data, message, hint = BAD_FILES[name]
    prices = tmp_path / "p.csv"
    prices.write_bytes(data)
    for argv in every_reader(prices, curve_file):
        result = cli(*argv)
        assert result.exit_code == 2, (argv, result.stdout, result.stderr)
        assert f"factoryctl: {prices}{message}" in result.stderr, argv
        assert hint is None or hint in result.stderr, argv
        assert "unexpected error" not in result.stderr


def test_a_non_utf8_curve_or_policy_file_is_a_usage_error(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0, 30.0]))
    curve = tmp_path / "c.csv"
    curve.write_bytes(curve_file.read_bytes() + b"TGPU\xff,400,x/y,32,400,1.0,1.0,300,1.0\n")
    result = cli(*simulate(prices, curve))
    assert result.exit_code == 2
    assert f"{curve}:16: the curve file is not UTF-8 text (byte 0xff)." in result.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"kind: tiers\n# caf\xe9\n")
    result = cli(*simulate(prices, curve_file, "--policy", str(policy)))
    assert result.exit_code == 2
    assert f"{policy}:2: the policy file is not UTF-8 text (byte 0xe9)." in result.stderr
    assert "hint: save it as UTF-8" in result.stderr


def test_a_short_curve_row_names_its_line(cli, tmp_path, curve_file):
    curve = tmp_path / "c.csv"
    curve.write_text(curve_file.read_text() + "TGPU,400,x/y,32\n")
    prices = write_prices(tmp_path / "p.csv", series([10.0]))
    result = cli(*simulate(prices, curve))
    assert result.exit_code == 2
    assert f"{curve}:16: the curve row has no pl_frac, throughput_rel, power_rel field" in result.stderr


def test_large_but_real_prices_are_accepted(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "p.csv", series([1e6, -1e6, 99999.0, 20.0]))
    assert cli(*simulate(prices, curve_file)).exit_code == 0
    assert cli("price", "history", "--prices", str(prices)).exit_code == 0


def test_history_since_takes_a_duration_like_every_other_since(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0, 30.0]))
    result = cli("price", "history", "--prices", str(prices), "--since", "1h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"] == []  # the series is from 2023
    old = cli("price", "history", "--prices", str(prices), "--since", "100000d", "--until", "2023-11-15T02:00Z")
    assert old.exit_code == 0, old.stderr
    assert [line.split()[1] for line in old.stdout.splitlines()[1:]] == ["10", "20"]


def test_show_marks_a_price_past_its_interval_as_stale(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    now = cli("price", "show", "--prices", str(prices), "-o", "json")
    assert now.exit_code == 0, now.stderr
    assert now.json()["stale"] is True
    assert now.json()["timestamp_utc"] == "2023-11-15T01:00:00Z"
    assert "the price shown is stale, not the price of the interval running then." in now.stderr
    assert "hint: update the prices file" in now.stderr
    table = cli("price", "show", "--prices", str(prices))
    assert table.stdout.split("\n")[1].split()[-1] == "yes"
    within = cli("price", "show", "--prices", str(prices), "--at", "2023-11-15T01:59:59Z", "-o", "json")
    assert within.json()["stale"] is False
    assert within.stderr == ""
    after = cli("price", "show", "--prices", str(prices), "--at", "2023-11-15T02:00:00Z", "-o", "json")
    assert after.json()["stale"] is True


def test_a_repeated_local_hour_names_the_likely_cause(cli, tmp_path, curve_file):
    """Local time without an offset repeats 02:00 when clocks go back: the hint says so and how to write it."""
    prices = tmp_path / "local.csv"
    rows = [f"2023-10-29T{h:02d}:00:00,{50 + h}\n" for h in (0, 1, 2)] + ["2023-10-29T02:00:00,40\n"]
    prices.write_text("timestamp_utc,price_per_mwh\n" + "".join(rows))
    for argv in every_reader(prices, curve_file):
        result = cli(*argv)
        assert result.exit_code == 2, argv
        assert ":5: bad price row: 2023-10-29T02:00:00Z repeats or goes back" in result.stderr
        assert "2023-10-29T02:00:00 has no offset, so it is read as UTC" in result.stderr
        assert "hint: a file written in local time without an offset repeats an hour when clocks go back" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr
