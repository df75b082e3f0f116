"""`power simulate` takes D from `--max-throughput-loss` or from an optimize policy's `max_throughput_loss`.

docs/power.md: "or give it on the command line (both given: they must agree, else exit 2)". Without a policy file,
or with a tiers policy (which has no D of its own), the option is required: a usage error that says so.
"""

from __future__ import annotations

from pathlib import Path

from power_data import SERIES, series, write_prices


def simulate(prices: Path, curve: Path, *extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
        "bench/toy", "--price-visibility", "day-ahead", "-o", "json", *extra,
    ]  # fmt: skip


def test_d_may_come_from_the_policy_file_alone(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "p.csv", series(SERIES["daily_sine"](48)))
    policy = tmp_path / "o.yaml"
    policy.write_text("policy: optimize\nmax_throughput_loss: 0.1\n")
    from_file = cli(*simulate(prices, curve_file, "--policy", str(policy)))
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.json()["max_throughput_loss"] == 0.1
    both = cli(*simulate(prices, curve_file, "--policy", str(policy), "--max-throughput-loss", "0.1"))
    assert both.exit_code == 0, both.stderr
    assert both.json() == from_file.json()
    differ = cli(*simulate(prices, curve_file, "--policy", str(policy), "--max-throughput-loss", "0.05"))
    assert differ.exit_code == 2
    assert f"max_throughput_loss is 0.1 in {policy} but 0.05 on the command line" in differ.stderr


def test_without_a_d_anywhere_the_command_says_where_to_give_it(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "p.csv", series(SERIES["daily_sine"](48)))
    bare = cli(*simulate(prices, curve_file))
    assert bare.exit_code == 2
    assert (
        "power simulate needs --max-throughput-loss, or a --policy file that sets max_throughput_loss." in bare.stderr
    )
    optimize = tmp_path / "o.yaml"
    optimize.write_text("policy: optimize\nloss_budget: rolling\n")
    no_key = cli(*simulate(prices, curve_file, "--policy", str(optimize)))
    assert no_key.exit_code == 2
    assert f"an optimize policy needs max_throughput_loss in {optimize}." in no_key.stderr
    assert "or on the command line" in no_key.stderr
    tiers = tmp_path / "t.yaml"
    tiers.write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 100, cap_pct: 80}\n")
    no_d = cli(*simulate(prices, curve_file, "--policy", str(tiers)))
    assert no_d.exit_code == 2
    assert f"{tiers}: a tiers policy sets no max_throughput_loss" in no_d.stderr
    given = cli(*simulate(prices, curve_file, "--policy", str(tiers), "--max-throughput-loss", "0.05"))
    assert given.exit_code == 0, given.stderr
    assert given.json()["policy"] == "tiers"
