"""Policy files and simulate options that would silently mean something else are refused in one sentence (exit 2).

A key given twice (YAML keeps the last), a floor above the GPU's largest limit (the policy could never lower the
limit) and a ramp of 0 (the first limit for ever) are refused; `--max-throughput-loss 5%` and a misspelt
`--price-visibility` are named back with a hint rather than in Click's or pydantic's words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from power_data import SERIES, series, write_prices
from test_power_simulate_cli import simulate_args


def simulate_with(cli, tmp_path: Path, curve_file: Path, policy_text: str | None, *extra: str):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](24)))
    args = simulate_args(prices, curve_file, "--price-visibility", "day-ahead", *extra)
    if policy_text is not None:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text)
        args += ["--policy", str(policy)]
    return cli(*args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "policy: optimize\nmax_throughput_loss: 0.05\nmax_throughput_loss: 0.05\n",
            "policy.yaml:3:1: max_throughput_loss is given twice in the policy file, and YAML would silently use the"
            " last one.\nhint: keep one of them.",
        ),
        (
            "policy: tiers\ntiers:\n  - above_per_mwh: 100\n    cap_pct: 60\n    cap_pct: 80\n",
            "policy.yaml:5:5: cap_pct is given twice in the policy file",
        ),
        (
            '{"policy": "optimize", "floor_pct": 50, "floor_pct": 60}',
            "policy.yaml:1:41: floor_pct is given twice in the policy file",
        ),
    ],
)
def test_a_key_given_twice_is_refused_at_its_line(cli, tmp_path, curve_file, text, message):
    result = simulate_with(cli, tmp_path, curve_file, text)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {tmp_path / message}" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("floor_pct: 500", "floor_pct 500 in {p} is above the GPU's largest limit (100 %), so the policy could never"),
        ("floor_w: 401", "floor_w 401 in {p} is above the GPU's largest limit (400 W), so the policy could never"),
        ("ramp_pct: 0", "ramp_pct 0 in {p} would hold the first limit for ever."),
    ],
)
def test_a_floor_above_the_largest_limit_or_a_zero_ramp_is_refused(cli, tmp_path, curve_file, setting, message):
    result = simulate_with(cli, tmp_path, curve_file, f"policy: optimize\n{setting}\n")
    assert result.exit_code == 2, result.stderr
    assert "factoryctl: " + message.format(p=tmp_path / "policy.yaml") in result.stderr
    assert "\nhint: " in result.stderr


def test_a_floor_at_the_largest_limit_is_accepted(cli, tmp_path, curve_file):
    result = simulate_with(cli, tmp_path, curve_file, "policy: optimize\nfloor_pct: 100\n", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["mean_power_limit_frac"] == 1.0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--max-throughput-loss",
            "5%",
            "factoryctl: --max-throughput-loss must be a fraction such as 0.05, not '5%'.\n"
            "hint: give D as a fraction: --max-throughput-loss 0.05 allows a 5 % loss of throughput.",
        ),
        (
            "--price-visibility",
            "dayahead",
            "factoryctl: unknown price visibility 'dayahead'.\n"
            "hint: choose from day-ahead, realtime; did you mean day-ahead?",
        ),
    ],
)
def test_a_bad_option_value_is_named_back(cli, tmp_path, curve_file, option, value, message):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](4)))
    args = simulate_args(prices, curve_file, "--price-visibility", "realtime")
    args[args.index(option) + 1] = value
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    "aliases",
    [
        "x: &a [*a]\n",  # an alias to its own list: the walk recursed until RecursionError
        "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),  # 9^9 paths: it spun
    ],
    ids=["recursive", "bomb"],
)
def test_aliases_in_a_policy_file_are_walked_once(cli, tmp_path, curve_file, aliases):
    text = "policy: optimize\nmax_throughput_loss: 0.05\n" + ("a0: &a0 [x]\n" if "a1" in aliases else "") + aliases
    result = simulate_with(cli, tmp_path, curve_file, text)
    assert result.exit_code == 2, result.stderr  # our refusal of the unknown key, not RecursionError or a hang
    assert "unknown key" in result.stderr


def test_an_alias_bomb_as_a_value_is_named_in_a_few_words(cli, tmp_path, curve_file):
    """`cap_pct:` of nested aliases (9^7 numbers) was written out whole: 39 MB on stderr (9^9: it never ended)."""
    bomb = "&a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"
    for level in range(1, 8):  # each level: the one below, then 8 more aliases of it
        bomb = f"&a{level} [{bomb}, {', '.join([f'*a{level - 1}'] * 8)}]"
    text = f"policy: tiers\ntiers:\n  - above_per_mwh: 100\n    cap_pct: {bomb}\n"
    result = simulate_with(cli, tmp_path, curve_file, text)
    assert result.exit_code == 2
    assert len(result.stderr) < 2000, len(result.stderr)
