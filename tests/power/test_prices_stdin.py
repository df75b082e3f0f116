"""`--prices -` reads the prices CSV from stdin, as `sched simulate --trace -` reads a trace (`zcat ... | factoryctl`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from power_data import SERIES, series, write_prices

WHEN = ("--since", "2023-11-15T03:00Z", "--until", "2023-11-15T09:00Z")


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    return write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](3 * 24)))


def simulate(prices: str, curve: Path, *extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", prices, "--curve", str(curve), "--gpu", "tgpu", "--workload", "bench/toy",
        "--max-throughput-loss", "0.05", "--price-visibility", "realtime", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("price", "history", *WHEN),
        ("price", "history", *WHEN, "-o", "json"),
        ("price", "show", "--at", "2023-11-15T10:30Z", "-o", "json"),
        ("price", "show", "--at", "2023-11-20T10:30Z"),  # after the file's end: stale, the warning names stdin
    ],
)
def test_price_commands_read_stdin_as_they_read_the_file(cli, prices, args):
    from_file = cli(*args, "--prices", str(prices))
    from_stdin = cli(*args, "--prices", "-", stdin=prices.read_text())
    assert from_stdin.exit_code == from_file.exit_code == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout
    assert from_stdin.stderr == from_file.stderr.replace(str(prices), "stdin")


def test_power_simulate_reads_the_prices_from_stdin(cli, prices, curve_file):
    from_file = cli(*simulate(str(prices), curve_file, "-o", "json"))
    from_stdin = cli(*simulate("-", curve_file, "-o", "json"), stdin=prices.read_text())
    assert from_stdin.exit_code == from_file.exit_code == 0, from_stdin.stderr
    assert from_stdin.json() == from_file.json()


def test_power_simulate_with_stdin_prices_writes_its_schedule(cli, prices, curve_file, tmp_path):
    schedule = tmp_path / "schedule.csv"
    result = cli(*simulate("-", curve_file, "--schedule-out", str(schedule)), stdin=prices.read_text())
    assert result.exit_code == 0, result.stderr
    assert len(schedule.read_text().splitlines()) == 1 + 3 * 24


def test_errors_in_stdin_prices_name_stdin(cli):
    text = "timestamp_utc,price_per_mwh\n2023-11-15T00:00Z,10\n2023-11-15T01:00Z,ten\n"
    result = cli("price", "history", "--prices", "-", stdin=text)
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[0]
        == "factoryctl: stdin:3: bad price row: price_per_mwh is 'ten', which is not a number."
    )


@pytest.mark.parametrize("command", [("price", "show"), ("price", "history")])
def test_a_terminal_on_stdin_is_refused(cli, command):
    result = cli(*command, "--prices", "-", tty=True)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "factoryctl: --prices - reads the prices file from stdin, which is a terminal.",
        "hint: pipe the prices file in (`--prices - < prices.csv`), or give --prices its path.",
    ]


def test_the_help_says_dash_is_stdin(cli):
    for command in (("price", "show"), ("price", "history"), ("power", "simulate")):
        assert "(-: stdin;" in " ".join(cli(*command, "--help").stdout.split())  # the help wraps its lines
