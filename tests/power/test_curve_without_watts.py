"""Review 13: on a curve file without watt columns a policy's `_w` key was read as a fraction of "1 W".

`cap_w: 200` then silently did nothing, `floor_w: 250` was refused as above "1 W" and `failsafe_w: 250` was clamped
to the largest limit. A `_w` key cannot be converted without watts, so it is a usage error naming the key and the
policy file, with the `_pct` form or `max_power_limit_w` as the way out; with watts in the curve it still converts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from curve_rows import HEADER, simulate
from power_data import series, write_prices

POLICIES = {
    "cap_w": "policy: tiers\ntiers:\n  - above_per_mwh: 10\n    cap_w: 200\n",
    "floor_w": "policy: optimize\nfloor_w: 250\n",
    "failsafe_w": "policy: optimize\nfailsafe_w: 250\n",
    "ramp_w": "policy: optimize\nramp_w: 50\n",
    "base_w": "policy: tiers\nbase_w: 300\ntiers:\n  - above_per_mwh: 10\n    cap_pct: 50\n",
}


def _files(tmp_path: Path, curve_rows: str, header: str = HEADER) -> tuple[Path, Path]:
    curve = tmp_path / "c.csv"
    curve.write_text(header + curve_rows)
    return write_prices(tmp_path / "p.csv", series([15.0, 20.0, 30.0])), curve


@pytest.mark.parametrize("key", sorted(POLICIES))
def test_a_watts_key_on_a_curve_without_watts_is_refused_naming_key_and_file(cli, tmp_path, key):
    prices, curve = _files(tmp_path, "x,w,0.5,0.8,0.5\nx,w,1.0,1.0,1.0\n")
    policy = tmp_path / "p13.yaml"
    policy.write_text(POLICIES[key])
    result = cli(*simulate(prices, curve, "--policy", str(policy)))
    assert result.exit_code == 2, result.stderr
    first, hint = result.stderr.splitlines()[:2]
    assert first.startswith(f"factoryctl: {key} in ")
    assert f"{policy}" in first
    assert "the curve file gives no watts" in first
    stem = key.removesuffix("_w")
    assert (
        hint == f"hint: give {stem}_pct instead, or add max_power_limit_w (the GPU's largest limit) to the curve file."
    )


def test_a_watts_cap_converts_when_the_curve_gives_the_largest_limit(cli, tmp_path):
    header = HEADER.rstrip("\n") + ",max_power_limit_w\n"
    prices, curve = _files(tmp_path, "x,w,0.5,0.8,0.5,400\nx,w,1.0,1.0,1.0,400\n", header)
    policy = tmp_path / "p13.yaml"
    policy.write_text(POLICIES["cap_w"])
    result = cli(*simulate(prices, curve, "--policy", str(policy), "-o", "json"))
    assert result.exit_code == 0, result.stderr
    assert result.json()["mean_power_limit_frac"] == pytest.approx(0.5)  # 200 W of 400 W, every price >= 10
