"""`power simulate` refuses what it used to run silently wrong: a history holding no price, numbers Python reads.

A `history_hours` shorter than one price interval (0, or 0.9 over hourly prices) left the realtime reference
sample empty: every interval at full power, saving 0 %, exit 0, no word. `1_000` and full-width digits (`１０`) went
through `float()` in prices, curves and `--max-throughput-loss`, which the docs (and the trace loader) refuse.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from power_data import SERIES, curve_csv_text, series, write_prices

from factoryctl.errors import ExitCode, UsageError
from factoryctl.power.policy.config import parse_policy


def _args(prices: Path, curve: Path, *extra: str, loss: str = "0.05") -> list[str]:
    return [
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
        "bench/toy", "--price-visibility", "realtime", "-o", "json", "--max-throughput-loss", loss, *extra,
    ]  # fmt: skip


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("hours", ["0", "0.0", "0.0001"])
def test_a_history_of_no_time_is_refused_when_the_policy_is_read(toy, hours):
    _, gpu = toy
    with pytest.raises(UsageError) as refused:
        parse_policy({"policy": "optimize", "max_throughput_loss": 0.05, "history_hours": float(hours)}, gpu, "p.yaml")
    assert "history_hours" in refused.value.message
    assert "holds no price interval" in refused.value.message
    assert refused.value.hint is not None
    assert "at least one price interval" in refused.value.hint


def test_a_history_of_zero_hours_is_exit_2_from_the_command(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](72)))
    policy = _policy(tmp_path, "policy: optimize\nmax_throughput_loss: 0.05\nhistory_hours: 0\n")
    result = cli(*_args(prices, curve_file, "--policy", str(policy)))
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert f"history_hours 0 in {policy} holds no price interval" in result.stderr
    assert "hint:" in result.stderr
    assert result.stdout == ""


def test_a_history_shorter_than_the_prices_interval_is_refused_naming_both(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](72)))
    policy = _policy(tmp_path, "policy: optimize\nmax_throughput_loss: 0.05\nhistory_hours: 0.9\n")
    result = cli(*_args(prices, curve_file, "--policy", str(policy)))
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert (
        f"history_hours 0.9 in {policy} is shorter than the prices' 60-minute interval, so the history holds no price"
        in result.stderr
    )
    assert "hint: give history_hours at least 1 (it is in hours" in result.stderr
    assert result.stdout == ""


def test_the_same_history_over_15_minute_prices_runs_and_saves(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](4 * 72), step_s=900))
    policy = _policy(tmp_path, "policy: optimize\nmax_throughput_loss: 0.05\nhistory_hours: 0.9\n")
    result = cli(*_args(prices, curve_file, "--policy", str(policy)))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict)
    assert document["saving_pct"] > 1.0  # it has a past to price on: it saves
    assert document["mean_power_limit_frac"] < 1.0


@pytest.mark.parametrize("written", ["1_000", "１０", "8０.5", "٣٤", "45\xa0"])
def test_prices_python_would_read_are_refused_at_their_line(cli, tmp_path, curve_file, written):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    lines = prices.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + f",{written}"
    prices.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli(*_args(prices, curve_file))
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert f"{prices}:4: bad price row: price_per_mwh is {written!r}, which is not a number" in result.stderr
    assert "hint: write numbers with ASCII digits" in result.stderr
    shown = cli("price", "history", "--prices", str(prices))
    assert shown.exit_code == ExitCode.USAGE
    assert f"{prices}:4:" in shown.stderr


@pytest.mark.parametrize("written", ["0_5", "０.5"])
def test_curve_values_python_would_read_are_refused_at_their_line(cli, tmp_path, written):
    lines = curve_csv_text().splitlines()
    fields = lines[3].split(",")
    fields[6] = written  # throughput_rel of the third row
    lines[3] = ",".join(fields)
    curve = tmp_path / "curves.csv"
    curve.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    result = cli(*_args(prices, curve))
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert f"{curve}:4: bad curve row: throughput_rel is '{written}', which is not a number" in result.stderr
    assert "hint: write numbers with ASCII digits" in result.stderr


@pytest.mark.parametrize("written", ["0_05", "０.05", "0.0５"])
def test_a_loss_budget_python_would_read_is_refused(cli, tmp_path, curve_file, written):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    result = cli(*_args(prices, curve_file, loss=written))
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert f"--max-throughput-loss must be a fraction such as 0.05, not {written!r}" in result.stderr
    assert result.stdout == ""
