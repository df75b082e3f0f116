"""Numbers in a policy file: infinities refused, exponent numbers read as numbers, an empty file refused (exit 2).

`min_dwell_minutes: .inf` (and every duration key) crashed `power simulate` with an OverflowError traceback, and an
infinite cap was silently clamped; `cap_pct: 1e2` (YAML 1.1 reads it as a string, JSON as a number) was refused as
not a number; an empty (truncated) policy file ran as the default optimize policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_policy_file_refusals import simulate_with

DURATIONS = ("min_dwell_minutes", "stale_after_minutes", "history_hours")
ROLLING = ("reserve_hours", "spend_hours")
LIMITS = ("ramp_pct", "failsafe_pct", "failsafe_w", "floor_pct", "floor_w")


@pytest.mark.parametrize(
    ("body", "key", "place"),
    [
        *((f"{key}: .inf\n", key, "") for key in DURATIONS + LIMITS),
        *((f"loss_budget: rolling\n{key}: .inf\n", key, "") for key in ROLLING),
        ("min_dwell_minutes: -.inf\n", "min_dwell_minutes", ""),
        ("policy: tiers\ntiers:\n  - {above_per_mwh: 100, cap_pct: .inf}\n", "cap_pct", "tier 1 of "),
        ("policy: tiers\ntiers:\n  - {above_per_mwh: .inf, cap_w: 200}\n", "above_per_mwh", "tier 1 of "),
        ("policy: tiers\nbase_w: .inf\ntiers:\n  - {above_per_mwh: 100, cap_pct: 50}\n", "base_w", ""),
    ],
)
def test_an_infinite_number_is_refused_naming_key_and_file(cli, tmp_path, curve_file, body, key, place):
    result = simulate_with(cli, tmp_path, curve_file, body)
    assert result.exit_code == 2, result.stderr
    assert f"{key} in {place}{tmp_path / 'policy.yaml'} must be a finite number, not " in result.stderr
    assert "unexpected error" not in result.stderr
    assert f"hint: give {key} a finite number" in result.stderr


@pytest.mark.parametrize("key", ["min_dwell_minutes", "floor_pct", "max_throughput_loss"])
def test_an_integer_past_any_float_is_refused_as_not_finite(cli, tmp_path, curve_file, key):
    """A YAML integer of 400 digits crashed the finiteness check itself (`int too large to convert to float`)."""
    result = simulate_with(cli, tmp_path, curve_file, f"{key}: 1{'0' * 400}\n")
    assert result.exit_code == 2, result.stderr
    assert f"{key} in {tmp_path / 'policy.yaml'} must be a finite number, not " in result.stderr
    assert "unexpected error" not in result.stderr


@pytest.mark.parametrize(
    ("body", "key", "most"),
    [
        ("min_dwell_minutes: 1e308\n", "min_dwell_minutes", "52560000"),
        ("stale_after_minutes: 1e308\n", "stale_after_minutes", "52560000"),
        ("history_hours: 1e306\n", "history_hours", "876000"),
        ("loss_budget: rolling\nreserve_hours: 876001\n", "reserve_hours", "876000"),
    ],
)
def test_a_finite_duration_past_a_century_is_refused(cli, tmp_path, curve_file, body, key, most):
    """1e308 minutes passed the finiteness check and overflowed once scaled to seconds (a traceback)."""
    result = simulate_with(cli, tmp_path, curve_file, body)
    assert result.exit_code == 2, result.stderr
    assert f"{key} in {tmp_path / 'policy.yaml'} must be at most {most} (100 years), not " in result.stderr
    assert "unexpected error" not in result.stderr


def test_a_century_is_still_a_duration(cli, tmp_path, curve_file):
    result = simulate_with(cli, tmp_path, curve_file, "policy: optimize\nmin_dwell_minutes: 52560000\n", "-o", "json")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("failsafe_pct: 201", "failsafe_pct 201 in {p} is more than 2 times the GPU's largest limit (100 %)"),
        ("failsafe_w: 801", "failsafe_w 801 in {p} is more than 2 times the GPU's largest limit (400 W)"),
        ("ramp_pct: 1.0e+300", "ramp_pct 1e+300 in {p} is more than 2 times the GPU's largest limit (100 %)"),
    ],
)
def test_a_limit_far_beyond_the_gpu_is_refused_as_a_unit_mistake(cli, tmp_path, curve_file, setting, message):
    result = simulate_with(cli, tmp_path, curve_file, f"policy: optimize\n{setting}\n")
    assert result.exit_code == 2, result.stderr
    assert "factoryctl: " + message.format(p=tmp_path / "policy.yaml") in result.stderr
    assert "at most" in result.stderr


def test_a_cap_above_the_range_but_within_twice_it_is_still_clamped(cli, tmp_path, curve_file):
    text = "policy: tiers\ntiers:\n  - {above_per_mwh: -1000, cap_pct: 150}\n"
    result = simulate_with(cli, tmp_path, curve_file, text, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["mean_power_limit_frac"] == 1.0
    assert result.json()["clamped_intervals"] > 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("policy.yaml", "policy: tiers\ntiers:\n  - {above_per_mwh: -1e3, cap_pct: 5e1}\nfloor_pct: 1e1\n"),
        ("policy.json", '{"policy": "tiers", "tiers": [{"above_per_mwh": -1E3, "cap_pct": 50}], "floor_pct": 1.0e1}'),
    ],
)
def test_exponent_numbers_are_numbers_as_in_yaml_1_2_and_json(cli, tmp_path, curve_file, name, text):
    policy = tmp_path / name
    policy.write_text(text)
    result = simulate_with(cli, tmp_path, curve_file, None, "--policy", str(policy), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["mean_power_limit_frac"] == pytest.approx(0.5)


def test_a_quoted_number_is_still_a_string(cli, tmp_path, curve_file):
    result = simulate_with(cli, tmp_path, curve_file, 'policy: optimize\nfloor_pct: "1e1"\n')
    assert result.exit_code == 2, result.stderr
    assert f"floor_pct in {tmp_path / 'policy.yaml'} must be a number, not '1e1'" in result.stderr


@pytest.mark.parametrize("text", ["", "\n\n", "# policy: tiers\n"])
def test_an_empty_policy_file_is_refused(cli, tmp_path: Path, curve_file, text):
    result = simulate_with(cli, tmp_path, curve_file, text)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {tmp_path / 'policy.yaml'}: the policy file is empty (it holds no settings)." in result.stderr
    assert "hint: a policy file is YAML" in result.stderr


@pytest.mark.parametrize("text", ["[]\n", "0\n", "null\n", "false\n"])
def test_a_policy_file_that_is_not_a_mapping_is_refused(cli, tmp_path: Path, curve_file, text):
    result = simulate_with(cli, tmp_path, curve_file, text)
    assert result.exit_code == 2, result.stderr
    assert f"{tmp_path / 'policy.yaml'} must be a mapping of settings." in result.stderr
