"""`power plan / apply / status`: factory.yaml's policy applied to a simulated fleet by the price now.

Real agents on the simulated driver (local transport), an H100 and an A100 range so a policy's `_pct` keys are
converted twice, and a price file written around the real clock (48 hours back, 24 ahead) as a feed would give it.
"""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

HOUR = 3600
TIERS = "policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n"


def _prices(path: Path, price_of: Any, hours: range = range(-48, 24)) -> None:
    """Hourly prices around now; `price_of(h)` is the price of the hour `h` hours from the current one."""
    now = int(time.time()) // HOUR * HOUR
    rows = ["timestamp_utc,price_per_mwh"]
    for h in hours:
        stamp = datetime.fromtimestamp(now + h * HOUR, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{price_of(h)}")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """Two H100 nodes and two A100 nodes, two GPUs each, with a tiers policy and prices of 150 since 2 hours ago."""
    _prices(tmp_path / "prices.csv", lambda h: 150 if h >= -2 else 60)
    (tmp_path / "policy.yaml").write_text(TIERS)
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: pa\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  h[01-02]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
        "  a[01-02]: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 2}}\n"
        "power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n"
    )
    return path


def _limits(cli: Any, factory: Path) -> list[float]:
    return [g["power_limit_w"] for g in cli("--config", str(factory), "gpus", "-o", "json").json()["items"]]


def _audit(cli: Any, factory: Path) -> list[dict[str, Any]]:
    return cli("--config", str(factory), "audit", "-o", "json").json()["items"]


def test_plan_converts_the_policy_per_gpu_range_and_changes_nothing(cli: Any, fleet: Path) -> None:
    planned = cli("--config", str(fleet), "power", "plan", "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    items = planned.json()["items"]
    assert [(i["node"], i["index"], i["power_limit_w"], i["plan_w"]) for i in items] == [
        ("h01", 0, 700, 560),
        ("h01", 1, 700, 560),
        ("h02", 0, 700, 560),
        ("h02", 1, 700, 560),
        ("a01", 0, 400, 320),
        ("a01", 1, 400, 320),
        ("a02", 0, 400, 320),
        ("a02", 1, 400, 320),
    ]
    assert {(i["reason"], i["price_per_mwh"], i["policy"], i["clamped"]) for i in items} == {
        ("tier", 150, "tiers", False)
    }
    table = cli("--config", str(fleet), "power", "plan")
    assert table.stdout.splitlines()[1:] == [
        "h[01-02] (2)   0-1    700     560      no        tier     150",
        "a[01-02] (2)   0-1    400     320      no        tier     150",
    ]
    assert _limits(cli, fleet) == [700] * 4 + [400] * 4
    assert not (fleet.parent / "state" / "power-policy.json").exists()


def test_apply_sets_the_plan_audits_it_and_a_second_apply_changes_nothing(cli: Any, fleet: Path) -> None:
    applied = cli("--config", str(fleet), "power", "apply", "--reason", "OPS-9", "-o", "json")
    assert applied.exit_code == 0, applied.stderr
    assert [(c["before_w"], c["enforced_w"]) for c in applied.json()["items"]] == [(700, 560)] * 4 + [(400, 320)] * 4
    assert _limits(cli, fleet) == [560] * 4 + [320] * 4
    entries = _audit(cli, fleet)
    assert len(entries) == 8
    for entry in entries:
        assert entry["reason"].startswith(f"power apply: tiers policy {fleet.parent / 'policy.yaml'}: tier at 150/MWh")
        assert entry["reason"].endswith("; OPS-9")
    state = json.loads((fleet.parent / "state" / "power-policy.json").read_text())
    assert state["curve"].startswith("built-in a40 squad/bert_base")
    assert (fleet.parent / "state" / "power-policy.json").stat().st_mode & 0o777 == 0o600

    again = cli("--config", str(fleet), "power", "apply", "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert {(c["before_w"], c["enforced_w"]) for c in again.json()["items"]} == {(560, 560), (320, 320)}
    assert len(_audit(cli, fleet)) == 8
    kept = json.loads((fleet.parent / "state" / "power-policy.json").read_text())
    assert kept | {"checkpoints": []} == state | {"checkpoints": []}  # a checkpoint if the hour turned in between


def test_stale_prices_give_the_failsafe(cli: Any, fleet: Path) -> None:
    """The feed stopped 5 hours ago: past stale_after_minutes (120) the policy sets its fail-safe limit."""
    _prices(fleet.parent / "prices.csv", lambda h: 150, range(-48, -5))
    (fleet.parent / "policy.yaml").write_text(TIERS + "failsafe_pct: 50\n")
    items = cli("--config", str(fleet), "power", "plan", "-o", "json").json()["items"]
    assert {(i["plan_w"], i["reason"]) for i in items} == {(350, "failsafe"), (200, "failsafe")}
    status = cli("--config", str(fleet), "power", "status", "-o", "json")
    assert status.exit_code == 0, status.stderr
    assert status.json()["stale"] is True
    assert status.json()["price_age_s"] >= 6 * HOUR


def test_status_says_the_course_and_the_loss_so_far_of_optimize(cli: Any, fleet: Path) -> None:
    (fleet.parent / "policy.yaml").write_text("policy: optimize\nmax_throughput_loss: 0.05\nhistory_hours: 24\n")
    before = cli("--config", str(fleet), "power", "status", "-o", "json")
    assert before.exit_code == 0, before.stderr
    assert (before.json()["applied"], before.json()["started_at"], before.json()["ranges"]) == (False, None, [])
    assert "no GPU range is known before the first `power apply`" in before.stderr
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    after = cli("--config", str(fleet), "power", "status", "-o", "json").json()
    assert after["applied"] is True
    assert after["policy"]["kind"] == "optimize"
    assert after["policy"]["max_throughput_loss"] == 0.05
    assert [(r["max_w"], r["reason"]) for r in after["ranges"]] == [(700, "ladder"), (400, "ladder")]
    assert [r["throughput_loss_pct"] for r in after["ranges"]] == [0.0, 0.0]  # rolling: nothing earned to spend yet


def test_a_changed_policy_starts_a_new_course(cli: Any, fleet: Path) -> None:
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    state = fleet.parent / "state" / "power-policy.json"
    first = json.loads(state.read_text())
    first["started_at"] -= 3 * HOUR  # as if it had started hours ago
    state.write_text(json.dumps(first))
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    assert json.loads(state.read_text())["started_at"] == first["started_at"]  # the same course goes on
    (fleet.parent / "policy.yaml").write_text(TIERS.replace("80", "70"))
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    renewed = json.loads(state.read_text())
    assert renewed["policy_sha256"] != first["policy_sha256"]
    assert renewed["started_at"] > first["started_at"] + 2 * HOUR
    assert _limits(cli, fleet) == [490] * 4 + [280] * 4


def test_no_policy_is_a_config_error_with_a_hint(cli: Any, fleet: Path) -> None:
    fleet.write_text(fleet.read_text().replace("  policy: policy.yaml\n", ""))
    for verb in ("plan", "apply", "status"):
        refused = cli("--config", str(fleet), "power", verb)
        assert refused.exit_code == 3, refused.stderr
        assert refused.stderr.splitlines() == [
            f"factoryctl: {fleet} sets no power.policy, so power {verb} has no policy to apply.",
            "hint: set power.policy in factory.yaml to a policy file (docs/power.md, Policies); try it first with"
            " `factoryctl power simulate --policy FILE`.",
        ]
    assert _limits(cli, fleet) == [700] * 4 + [400] * 4


def test_a_curve_without_its_names_is_a_config_error(cli: Any, fleet: Path) -> None:
    fleet.write_text(fleet.read_text() + "  curve: curves.csv\n  curve_gpu: a40\n")
    refused = cli("--config", str(fleet), "power", "plan")
    assert refused.exit_code == 3
    assert "power.curve needs power.curve_gpu and power.curve_workload" in refused.stderr


def test_apply_to_some_gpus_sets_only_those(cli: Any, fleet: Path) -> None:
    applied = cli("--config", str(fleet), "power", "apply", "h01,a02/1", "-o", "json")
    assert applied.exit_code == 0, applied.stderr
    assert _limits(cli, fleet) == [700, 560, 700, 700, 400, 400, 400, 320]
    assert sorted((e["node"], e["gpu"]) for e in _audit(cli, fleet)) == [("a02", 1), ("h01", 1)]
    refused = cli("--config", str(fleet), "power", "plan", "h01/5")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("factoryctl: h01 has no GPU 5 (it has GPUs 0-1)")


def _started_hours_ago(fleet: Path, hours: int) -> Path:
    """Apply once, then move the course's start `hours` back, as if it had been applying since."""
    state = fleet.parent / "state" / "power-policy.json"
    document = json.loads(state.read_text())
    document["started_at"] -= hours * HOUR
    state.write_text(json.dumps(document))
    return state


def test_apply_keeps_a_checkpoint_per_range_and_plan_and_status_only_read_it(cli: Any, fleet: Path) -> None:
    """The next run resumes from the checkpoint rather than replay the course; `plan` and `status` never write one."""
    (fleet.parent / "policy.yaml").write_text("policy: optimize\nmax_throughput_loss: 0.05\nhistory_hours: 24\n")
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    state = _started_hours_ago(fleet, 30)
    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    document = json.loads(state.read_text())
    this_hour = int(time.time()) // HOUR * HOUR
    assert [(c["range"][1], c["interval_start"]) for c in document["checkpoints"]] in (
        [(700, this_hour - HOUR), (400, this_hour - HOUR)],
        [(700, this_hour), (400, this_hour)],  # the hour turned since `this_hour` was read
    )
    first = document["started_at"] // HOUR * HOUR  # the hour holding the start: the course's first interval
    assert [c["state"]["steps"] for c in document["checkpoints"]] == [
        (c["interval_start"] - first) // HOUR + 1 for c in document["checkpoints"]
    ]
    written = state.read_bytes()
    planned = cli("--config", str(fleet), "power", "plan", "-o", "json").json()["items"]
    status = cli("--config", str(fleet), "power", "status", "-o", "json").json()["ranges"]
    assert state.read_bytes() == written
    for checkpoint in document["checkpoints"]:
        checkpoint["digest"] = "0" * 64  # as if a past price had been revised: replayed from the start
    state.write_text(json.dumps(document))
    assert cli("--config", str(fleet), "power", "plan", "-o", "json").json()["items"] == planned
    assert cli("--config", str(fleet), "power", "status", "-o", "json").json()["ranges"] == status
    assert {c["digest"] for c in json.loads(state.read_text())["checkpoints"]} == {"0" * 64}  # nothing wrote


def test_a_lost_gpu_leaves_its_nodes_other_gpus_planned(cli: Any, fleet: Path) -> None:
    """Fault review: the node was asked for all its GPUs (one range), which it refused for the lost one, so its
    healthy GPUs never followed the prices: by hand (exit 1, a hint) or the controller's loop (every run)."""
    assert cli("--config", str(fleet), "sim", "inject", "h02/1", "--lost").exit_code == 0
    result = cli("--config", str(fleet), "power", "apply", "--reason", "OPS-9 peak", "--timeout", "30")
    assert result.exit_code == 0, result.stderr
    assert [(e["node"], e["gpu"]) for e in _audit(cli, fleet) if e["node"] == "h02"] == [("h02", 0)]
    assert cli("--config", str(fleet), "power", "diff", "--exit-code").exit_code == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_course_replay_shows_its_progress_on_a_terminal_only(
    cli: Any, fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factoryctl.cli import progress
    from factoryctl.cli.app import run

    assert cli("--config", str(fleet), "power", "apply").exit_code == 0
    _started_hours_ago(fleet, 30)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # as if the replay were long: no test waits on the clock
    monkeypatch.setenv("TERM", "xterm")
    for quiet in ((), ("-q",)):
        out, err = io.StringIO(), _Terminal()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        assert run([*quiet, "--config", str(fleet), "power", "plan"]) == 0
        monkeypatch.undo()
        monkeypatch.setattr(progress, "DELAY_S", 0.0)
        monkeypatch.setenv("TERM", "xterm")
        if quiet:
            assert "replaying" not in err.getvalue()
        else:
            assert "\rreplaying tiers since " in err.getvalue()
            assert "% of " in err.getvalue()
            assert err.getvalue().endswith("\r\x1b[K")  # wiped: the table prints on a clean line
    plain = cli("--config", str(fleet), "power", "plan")  # stderr not a terminal (DELAY_S still 0)
    assert (plain.exit_code, plain.stderr) == (0, "")


def test_a_limit_the_policy_clamped_says_so_in_the_audit_entry(cli: Any, fleet: Path) -> None:
    """`cap_w: 500` on an A100 (100-400 W) is clamped to 400 W: the plan said `clamped`, the audit entry did not."""
    (fleet.parent / "policy.yaml").write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_w: 500}\n")
    assert cli("--config", str(fleet), "power", "set", "a01", "--watts", "300").exit_code == 0
    applied = cli("--config", str(fleet), "power", "apply", "a01")
    assert applied.exit_code == 0, applied.stderr
    entry = _audit(cli, fleet)[-1]
    assert (entry["node"], entry["after_w"]) == ("a01", 400)
    assert entry["reason"].endswith(", clamped to the GPU's range"), entry["reason"]


def test_the_policy_is_parsed_from_the_text_it_fingerprinted(cli: Any, fleet: Path, monkeypatch: Any) -> None:
    """An editor saving the policy during a run gave limits of the new file under the old file's sha256."""
    from factoryctl.cli import power

    policy = fleet.parent / "policy.yaml"
    reads = []
    real = power.parse_policy_file

    def parse_then_edit(path: Path, gpu: Any, max_loss: Any, text: Any = None) -> Any:
        reads.append(text is not None)
        policy.write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 50}\n")  # saved meanwhile
        return real(path, gpu, max_loss, text)

    monkeypatch.setattr(power, "parse_policy_file", parse_then_edit)
    planned = cli("--config", str(fleet), "power", "plan", "-o", "json")
    assert planned.exit_code == 0, planned.stderr
    assert {i["plan_w"] for i in planned.json()["items"]} == {560, 320}  # cap_pct 80 of the text read first
    assert reads
    assert all(reads)
