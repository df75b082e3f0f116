"""A `power set / reset` that leaves a GPU's limit where it was is not a change: no audit entry for that GPU.

A reset from cron every 5 minutes on 2,000 nodes of 8 GPUs wrote 16,000 entries of nothing per run. The command's own
listing still has every GPU it addressed, before equal to after. Real agents on the simulated driver (local
transport).
"""

from __future__ import annotations

from pathlib import Path


def _factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  m[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 3}}\n"
    )
    return path


def _audited(cli, factory: Path) -> list[tuple[str, int, str, float, float]]:
    items = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    return [(e["node"], e["gpu"], e["action"], e["before_w"], e["after_w"]) for e in items]


def test_only_the_gpus_whose_limit_moved_are_audited(cli, tmp_path):
    factory = _factory(tmp_path)
    for _ in range(2):
        reset = cli("--config", str(factory), "power", "reset", "all", "-o", "json")
        assert reset.exit_code == 0, reset.stderr
        assert [(i["before_w"], i["enforced_w"]) for i in reset.json()["items"]] == [(700.0, 700.0)] * 8
    assert _audited(cli, factory) == []
    assert cli("--config", str(factory), "power", "set", "m1/0-1", "--watts", "400").exit_code == 0
    again = cli("--config", str(factory), "power", "set", "m1", "--watts", "400", "-o", "json")
    assert [(i["gpu"], i["before_w"], i["enforced_w"]) for i in again.json()["items"]] == [
        (0, 400.0, 400.0),
        (1, 400.0, 400.0),
        (2, 700.0, 400.0),
        (3, 700.0, 400.0),
    ]
    assert _audited(cli, factory) == [
        ("m1", 0, "set", 700.0, 400.0),
        ("m1", 1, "set", 700.0, 400.0),
        ("m1", 2, "set", 700.0, 400.0),
        ("m1", 3, "set", 700.0, 400.0),
    ]


def test_the_summary_of_a_long_table_says_when_nothing_went_to_the_audit_log(cli, tmp_path):
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
    )
    reset = cli("--config", str(factory), "power", "reset", "all")
    assert reset.exit_code == 0, reset.stderr
    assert reset.stderr == (
        "factoryctl: 24 GPU limits on 3 nodes set (0 changed); none is in the audit log, as none changed.\n"
    )
    assert _audited(cli, factory) == []
