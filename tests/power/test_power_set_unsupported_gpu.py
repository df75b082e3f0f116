"""`power set / reset` on GPUs that cannot have their limit changed: the driver's failure, with a hint about the GPU.

Real agents on the simulated driver (local transport); `sim.unsupported` withholds the limit (no setter) or its range.
The agent answers `unsupported`; the listing's `errors` say `driver` (a kind docs/cli.md lists), and the hint is about
the GPU and names the node, not "run `factoryctl nodes check TARGET`".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FACTORY = """\
name: lab
nodes:
  u1: {transport: local, sim: {profile: l40s, gpus: 2, unsupported: [power_limit_w]}}
  u2: {transport: local, sim: {profile: l40s, gpus: 2, unsupported: [power_limit_min_w]}}
  ok: {transport: local, sim: {profile: l40s, gpus: 2}}
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


@pytest.mark.parametrize(
    ("node", "said"),
    [
        ("u1", "GPU 0 does not support setting a power limit"),
        ("u2", "GPU 0 does not report its power limit range (not supported)"),
    ],
)
def test_the_error_is_the_drivers_and_the_hint_is_about_the_gpu(cli: Any, factory: Path, node: str, said: str) -> None:
    result = cli("--config", str(factory), "power", "set", node, "--watts", "300", "-o", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"] == [{"node": node, "error": "driver", "message": said}]
    assert f"factoryctl: {node}: {said}" in result.stderr.splitlines()  # the node named once, before the sentence
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint: "))
    assert f"`factoryctl gpus {node} -o json`" in hint
    assert "TARGET" not in result.stderr
    assert "nodes check" not in result.stderr
    assert "factoryctl: no power limit was changed." in result.stderr


def test_reset_says_the_same_and_the_other_node_is_still_set(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "power", "set", "ok", "--watts", "300").exit_code == 0  # a reset changes it
    result = cli("--config", str(factory), "power", "reset", "u1,ok", "-o", "json")
    assert result.exit_code == 1
    listing = json.loads(result.stdout)
    assert [e["error"] for e in listing["errors"]] == ["driver"]
    assert {item["node"] for item in listing["items"]} == {"ok"}
    audit = json.loads(cli("--config", str(factory), "audit", "-o", "json").stdout)
    assert {entry["node"] for entry in audit["items"]} == {"ok"}
