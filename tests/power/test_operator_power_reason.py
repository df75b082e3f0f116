"""`power set / reset --reason`: why a limit changed is kept with the change in the audit log, as a ticket would be.

Real agents on the simulated driver (local transport) and the real SQLite store, read back by `factoryctl audit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    return path


def audit_reasons(cli: Any, factory: Path) -> list[tuple[str, int, str, str | None]]:
    result = cli("--config", str(factory), "audit", "--since", "1h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [(i["node"], i["gpu"], i["action"], i["reason"]) for i in result.json()["items"]]


def test_reason_is_stored_with_each_change_and_shown_by_audit(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "450", "--reason", "grid peak OPS-1")
    assert result.exit_code == 0, result.stderr
    reset = cli("--config", str(factory), "power", "reset", "n1/1", "-r", "peak over")
    assert reset.exit_code == 0, reset.stderr
    assert sorted(audit_reasons(cli, factory)) == [
        ("n1", 0, "set", "grid peak OPS-1"),
        ("n1", 1, "reset", "peak over"),
        ("n1", 1, "set", "grid peak OPS-1"),
    ]
    table = cli("--config", str(factory), "audit", "--since", "1h")
    assert "grid peak OPS-1" in table.stdout


def test_no_reason_or_an_empty_one_is_null(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "power", "set", "n1/0", "--watts", "400").exit_code == 0
    assert cli("--config", str(factory), "power", "set", "n1/1", "--watts", "400", "-r", " ").exit_code == 0
    assert [reason for *_, reason in audit_reasons(cli, factory)] == [None, None]
