"""A simulated node whose state dir cannot be used says to check the state dir, not "the NVIDIA driver"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_an_unusable_state_dir_points_at_the_state_dir(
    cli: Any, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    (state / "factoryctl" / "factory").mkdir(parents=True)  # the state_dir is a directory (else a config error) ...
    (state / "factoryctl" / "factory" / "sim").write_text("")  # ... but the simulated driver's own is a file
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    config = tmp_path / "factory.yaml"
    config.write_text("nodes:\n  s1: {transport: local, sim: h100-sxm, gpus: 2}\n")
    result = cli("--config", str(config), "gpus", "s1", "-o", "json")
    assert result.exit_code == 1
    assert [e["error"] for e in result.json()["errors"]] == ["driver"]
    assert "hint: check that the node's state_dir (factory.yaml, else $XDG_STATE_HOME)" in result.stderr
    assert "NVIDIA" not in result.stderr
