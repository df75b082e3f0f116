"""`factoryctl power simulate` end to end, re-checked by a validator that knows nothing of the engine."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
from power_data import SERIES, series, write_prices

FIELDS = ("baseline_cost", "cost", "saving_pct", "throughput_loss_pct", "blind_saving_pct", "bound_saving_pct")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as rows:
        return list(csv.DictReader(rows))


def validate(schedule: Path, prices: Path, curve_csv: Path, gpu: str, workload: str) -> dict[str, float]:
    """Recompute cost and loss from the written schedule and the curve file, with an interpolation of its own."""
    table = sorted(
        (float(r["pl_frac"]), float(r["throughput_rel"]), float(r["power_rel"]))
        for r in read_csv(curve_csv)
        if r["gpu"].lower() == gpu and r["workload"] == workload
    )

    def at(frac: float, column: int) -> float:
        if frac <= table[0][0]:
            return table[0][column]
        for (x0, *y0), (x1, *y1) in itertools.pairwise(table):
            if x0 <= frac <= x1:
                return y0[column - 1] + (frac - x0) / (x1 - x0) * (y1[column - 1] - y0[column - 1])
        return table[-1][column]

    rows = read_csv(schedule)
    inputs = read_csv(prices)
    assert [r["timestamp_utc"] for r in rows] == [r["timestamp_utc"] for r in inputs]  # none dropped, same order
    cost = baseline = throughput = 0.0
    for row in rows:
        frac = float(row["power_limit_frac"])
        assert 0.25 - 1e-9 <= frac <= 1.0 + 1e-9
        throughput += at(frac, 1)
        if row["price_per_mwh"]:
            price = float(row["price_per_mwh"])
            cost += price * at(frac, 2)
            baseline += price * at(1.0, 2)
    return {
        "cost": cost,
        "baseline_cost": baseline,
        "saving_pct": 100 * (baseline - cost) / abs(baseline),
        "throughput_loss_pct": 100 * (1 - throughput / len(rows)),
    }


def simulate_args(prices: Path, curve: Path, *extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
        "bench/toy", "--max-throughput-loss", "0.05", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
def test_simulate_json_matches_an_independent_validator(cli, tmp_path, curve_file, visibility):
    values = SERIES["daily_sine"](5 * 24)
    values[30] = None
    points = series(values)
    prices = write_prices(tmp_path / "prices.csv", points[:50] + points[53:])  # three missing hours
    schedule = tmp_path / "schedule.csv"
    args = simulate_args(
        prices, curve_file, "--price-visibility", visibility, "-o", "json", "--schedule-out", str(schedule)
    )
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict)
    for field in FIELDS:
        assert isinstance(document[field], float)
    assert document["gpu"] == "TGPU"
    assert document["workload"] == "bench/toy"
    assert document["nan_prices"] == 1
    assert document["missing_intervals"] == 3
    assert document["intervals"] == len(points) - 3
    assert document["throughput_loss_pct"] <= 5.0 + 1e-9
    assert document["blind_saving_pct"] <= document["bound_saving_pct"]
    recomputed = validate(schedule, prices, curve_file, "tgpu", "bench/toy")
    for key, value in recomputed.items():
        assert document[key] == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_simulate_with_a_tiers_policy_file_and_table_output(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["spikes"](48)))
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: tiers\ntiers:\n  - above_per_mwh: 100\n    cap_pct: 60\n")
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "--policy", str(policy)))
    assert result.exit_code == 0, result.stderr
    assert "saving_pct" in result.stdout
    assert "tiers" in result.stdout


def test_simulate_yaml_output(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime", "-o", "yaml"))
    assert result.exit_code == 0, result.stderr
    assert "bound_saving_pct:" in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--gpu", "h100"), "no GPU 'h100'"),
        (("--workload", "toy"), "ambiguous"),
        (("--max-throughput-loss", "2"), "fraction"),
    ],
)
def test_simulate_usage_errors(cli, tmp_path, curve_file, change, message):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    args = simulate_args(prices, curve_file, "--price-visibility", "realtime")
    index = args.index(change[0])
    args[index + 1] = change[1]
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_simulate_reports_bad_files_with_their_line(cli, tmp_path, curve_file):
    prices = tmp_path / "prices.csv"
    prices.write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,10\n2023-01-01T01:00:00Z,abc\n")
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime"))
    assert result.exit_code == 2
    assert "prices.csv:3" in result.stderr
    assert "hint: a prices file has" in result.stderr
    missing = cli(*simulate_args(tmp_path / "nope.csv", curve_file, "--price-visibility", "realtime"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    assert "hint: " in missing.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: [unclosed\n")
    prices.write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,10\n")
    bad = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime", "--policy", str(policy)))
    assert bad.exit_code == 2
    assert "policy.yaml:" in bad.stderr
    assert "hint: a policy file is YAML: `policy: optimize`" in bad.stderr
    policy.write_text("policy: tiers\ntiers: []\n")
    empty = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime", "--policy", str(policy)))
    assert empty.exit_code == 2
    assert "hint: a policy file is YAML: `policy: optimize`" in empty.stderr


def test_visibility_is_checked_by_the_cli(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](30)))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "tomorrow"))
    assert result.exit_code == 2


def test_schedule_json_is_strict(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series([None, None, 10.0]))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    json.loads(result.stdout, parse_constant=refuse)  # plain json.loads would accept NaN and Infinity


def test_all_prices_unknown_gives_null_savings_and_failsafe(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "prices.csv", series([None] * 6))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["saving_pct"] is None
    assert document["bound_saving_pct"] is None
    assert document["stale_intervals"] == 6
    assert document["throughput_loss_pct"] == pytest.approx(5.0)


def test_duplicate_timestamps_are_named(cli, tmp_path, curve_file):
    prices = tmp_path / "prices.csv"
    prices.write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,10\n2023-01-01T00:00:00Z,11\n")
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime"))
    assert result.exit_code == 2
    assert "2023-01-01T00:00:00Z repeats" in result.stderr


def test_a_stop_while_the_results_are_written_leaves_no_temporary_file(cli, tmp_path, curve_file, monkeypatch):
    """The results were printed after the output file's clean-up ended: a Ctrl-C there left `.schedule.csv.XXXX`."""
    import factoryctl.cli.power as power_cli

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(power_cli, "_note_no_saving", stopped)
    out = tmp_path / "schedule.csv"
    out.write_text("kept\n")
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["spikes"](48)))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "realtime", "--schedule-out", str(out)))
    assert result.exit_code == 130, result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert out.read_text() == "kept\n"  # the file that was there is untouched
