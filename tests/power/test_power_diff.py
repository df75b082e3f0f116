"""`power diff`: the GPUs whose enforced limit is not the policy's plan now, and `--exit-code` for scripts.

Real agents on the simulated driver (local transport): an H100 node and an A100 node of two GPUs each, a tiers policy
capping at 80 % above 120, and prices of 150 for the hour running now, so every GPU's plan is 80 % of its default.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

HOUR = 3600


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    now = int(time.time()) // HOUR * HOUR
    rows = ["timestamp_utc,price_per_mwh"]
    for h in range(-3, 3):
        rows.append(f"{datetime.fromtimestamp(now + h * HOUR, timezone.utc):%Y-%m-%dT%H:%M:%SZ},150")
    (tmp_path / "prices.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "policy.yaml").write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n")
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: pd\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  h01: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
        "  a01: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 2}}\n"
        "power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n"
    )
    return path


def test_diff_lists_the_gpus_off_their_plan_and_exit_code_says_any(cli: Any, fleet: Path) -> None:
    config = ("--config", str(fleet))
    state = fleet.parent / "state" / "power-policy.json"
    before = cli(*config, "power", "diff", "--exit-code", "-o", "json")
    assert (before.exit_code, before.stderr) == (1, "4 of 4 GPUs differ from the plan\n")
    assert [(i["node"], i["index"], i["power_limit_w"], i["plan_w"]) for i in before.json()["items"]] == [
        ("h01", 0, 700, 560),
        ("h01", 1, 700, 560),
        ("a01", 0, 400, 320),
        ("a01", 1, 400, 320),
    ]
    assert not state.exists()  # diff changes nothing, not even the course's start
    assert cli(*config, "-q", "power", "apply").exit_code == 0
    after = cli(*config, "power", "diff", "--exit-code")
    assert (after.exit_code, after.stderr) == (0, "0 of 4 GPUs differ from the plan\n")

    assert cli(*config, "power", "set", "a01/1", "--watts", "300").exit_code == 0
    one = cli(*config, "power", "diff", "--exit-code")
    assert (one.exit_code, one.stderr) == (1, "1 of 4 GPUs differs from the plan\n")
    assert one.stdout.splitlines()[1:] == ["a01     1      300     320      no        tier     150"]
    quiet = cli(*config, "-q", "power", "diff", "h01")
    assert (quiet.exit_code, quiet.stderr) == (0, "")


def test_an_unreadable_node_is_an_error_not_no_difference(cli: Any, fleet: Path) -> None:
    """A node that could not be read may differ too: its error and exit status, never `0`, whatever --exit-code."""
    assert cli("--config", str(fleet), "-q", "power", "apply").exit_code == 0
    fleet.write_text(
        fleet.read_text().replace("power:", "  gone: {transport: local, python: /nonexistent/python3}\npower:")
    )
    for asked in ((), ("--exit-code",)):
        result = cli("--config", str(fleet), "power", "diff", *asked, "-o", "json")
        assert result.exit_code == 1, result.stderr
        assert "factoryctl: gone: cannot start /nonexistent/python3" in result.stderr
        assert result.stderr.endswith("0 of 4 GPUs differ from the plan\n")
        assert result.json()["items"] == []
