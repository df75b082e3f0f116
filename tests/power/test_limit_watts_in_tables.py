"""Tables show a power limit as it was set (`250.4`), not rounded to whole watts; JSON keeps the number."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.cli.render import limit_watts


def test_limit_watts_keeps_what_was_set():
    assert [limit_watts(v) for v in (100.4, 287.5, 300.0, 250.125, 99.9999, None)] == [
        "100.4",
        "287.5",
        "300",
        "250.125",
        "100",
        "-",
    ]


def test_power_set_audit_and_nodes_tables_show_the_decimals(cli, tmp_path: Path):
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  ws: {transport: local, sim: {profile: h100-sxm, gpus: 1, seed: 3}}\n"
    )
    changed = cli("--config", str(config), "power", "set", "ws", "--watts", "250.4")
    assert changed.exit_code == 0, changed.stderr
    assert changed.stdout.splitlines()[1].split() == ["ws", "0", "700", "250.4", "no"]
    audit = cli("--config", str(config), "audit")
    assert audit.stdout.splitlines()[1].split()[1:6] == ["ws", "0", "set", "700", "250.4"]
    assert cli("--config", str(config), "audit", "-o", "json").json()["items"][0]["after_w"] == 250.4
    nodes = cli("--config", str(config), "nodes")
    header, row = nodes.stdout.splitlines()[:2]
    assert row[header.index("CAP W") :].split()[0] == "250.4"
    gpus = cli("--config", str(config), "gpus")
    header, row = gpus.stdout.splitlines()[:2]
    assert row[header.index("CAP W") :].split()[0] == "250.4"


def test_a_long_table_of_changes_ends_with_a_summary(cli, tmp_path: Path):
    """A fleet's `power set` is thousands of rows: past 20 a summary line on stderr says how many, where and clamped."""
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
    )
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "450")
    assert changed.exit_code == 0, changed.stderr
    assert len(changed.stdout.splitlines()) == 1 + 1  # 24 alike changes, one folded row (n[1-3], GPUs 0-7)
    assert changed.stderr == "factoryctl: 24 GPU limits on 3 nodes set (24 changed), in the audit log.\n"
    again = cli("--config", str(config), "power", "set", "all", "--watts", "450")
    assert again.stderr == (
        "factoryctl: 24 GPU limits on 3 nodes set (0 changed); none is in the audit log, as none changed.\n"
    )
    quiet = cli("--config", str(config), "-q", "power", "set", "all", "--watts", "460")
    assert quiet.stderr == ""
    listed = cli("--config", str(config), "power", "set", "all", "--watts", "470", "-o", "json")
    assert listed.stderr == ""
    small = cli("--config", str(config), "power", "set", "n1", "--watts", "480")
    assert small.stderr == ""  # 8 rows read at a glance


@pytest.mark.parametrize(("output", "summed"), [("wide", True), ("csv", False), ("yaml", False)])
def test_the_summary_is_for_tables_only(cli, tmp_path: Path, output: str, summed: bool):
    """The line is for a person reading a long table; json, yaml and csv go to programs (docs/power.md)."""
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
    )
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "450", "-o", output)
    assert changed.exit_code == 0, changed.stderr
    summary = "factoryctl: 24 GPU limits on 3 nodes set (24 changed), in the audit log.\n"
    assert changed.stderr == (summary if summed else "")
