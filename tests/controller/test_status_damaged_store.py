"""`controller status` with no controller running says the store is damaged when it is, with the hint to move it.

A controller exits 1 when a write finds its store damaged; status read only a few pages, none of them bad, and said
"no controller is running on this store." with the hint to start one, which ran straight back into the damage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_795_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    for minute in range(20):  # a few hundred KiB of samples, as a controller leaves behind
        samples = [
            NodeSample("n1", T0 + minute * 60 + s, gpus=tuple(GpuSample("n1", g, power_w=300.0 + s) for g in range(8)))
            for s in range(60)
        ]
        store.write(samples, stored_at=T0 + minute * 60 + 60)
    store.close()
    return path


def overwrite(path: Path, at: float = 0.5, size: int = 8192) -> None:
    """What the review did: 8 KiB of garbage in the middle of the file (`at` 0.5; the store closed)."""
    with open(path, "r+b") as handle:
        handle.seek(int(path.stat().st_size * at) // size * size)
        handle.write(b"\xa5" * size)


def test_status_names_the_damage_a_stopped_controller_left(cli: Any, config: Path, tmp_path: Path) -> None:
    path = tmp_path / "state" / "factory.db"
    assert path.stat().st_size > 200_000
    overwrite(path)
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert result.stdout.startswith("controller: not running\n")
    assert f"factoryctl: the store at {path} is damaged: " in result.stderr
    assert f"hint: move it aside (`mv {path} {path}.damaged`" in result.stderr
    assert "no controller is running" not in result.stderr
    doc = json.loads(cli("--config", str(config), "controller", "status", "-o", "json").stdout)
    assert doc["running"] is False
    assert "is damaged" in doc["problem"]


def test_a_sound_store_is_only_not_running(cli: Any, config: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        assert store.damage_found(5.0) is None
    finally:
        store.close()
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1
    assert "factoryctl: no controller is running on this store." in result.stderr
