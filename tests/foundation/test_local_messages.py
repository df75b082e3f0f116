"""A local node's exec says what an SSH node (or bash) says: a timeout's command was killed; a name not on PATH
is `command not found`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _factory(tmp_path: Path) -> str:
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n  loc1: {{transport: local}}\n")
    return str(factory)


def test_a_timed_out_local_command_is_said_to_be_killed(cli: Any, tmp_path: Path) -> None:
    r = cli("--config", _factory(tmp_path), "exec", "loc1", "-t", "1", "-o", "json", "--", "sleep", "30")
    assert r.exit_code == 124, r.stderr
    assert json.loads(r.stdout)["errors"][0]["message"] == "command did not finish within 1 s and was killed"


def test_a_name_not_on_path_is_command_not_found_as_bash_says(cli: Any, tmp_path: Path) -> None:
    r = cli("--config", _factory(tmp_path), "exec", "loc1", "--", "nosuchcmd_xyz", "x")
    assert r.exit_code == 127, r.stderr
    assert "loc1: nosuchcmd_xyz: command not found" in r.stdout + r.stderr


def test_a_missing_path_keeps_the_systems_reason(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nosuch" / "cmd"
    r = cli("--config", _factory(tmp_path), "exec", "loc1", "--", str(missing))
    assert r.exit_code == 127, r.stderr
    assert f"{missing}: No such file or directory" in r.stdout + r.stderr
