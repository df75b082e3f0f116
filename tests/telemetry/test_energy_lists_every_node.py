"""`telemetry energy` lists every node of its target, and says which have no reading in the window.

A node the store had no GPU row for (never collected, never reached) was left out: `energy s5 -o json` gave
`items: []`, exit 0, nothing on stderr, and a table over s[1-5] silently lacked s5, so a script summing the rows
read it as costing nothing. It is now a row with source `none` and `energy_kwh` null, and a warning (kept under -q)
names the nodes with no reading.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """s[1-5] with a minute of counter samples for s1-s3; s4 and s5 never collected."""
    path = write_factory(tmp_path, "s[1-5]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)
    store = Store(tmp_path / "state" / "factory.db")
    start = time.time() - 90
    store.write(
        [
            NodeSample(n, start + s, gpus=tuple(GpuSample(n, g, power_w=100.0, energy_j=100.0 * s) for g in range(2)))
            for s in range(60)
            for n in ("s1", "s2", "s3")
        ]
    )
    store.close()
    return path


def test_a_node_never_collected_is_a_row_with_no_reading(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "telemetry", "energy", "s5", "--since", "10m", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = result.json()["items"]  # was []
    assert [(i["node"], i["gpus"], i["energy_kwh"], i["cost"], i["source"], i["per_gpu"]) for i in items] == [
        ("s5", 0, None, None, "none", [])
    ]
    assert "warning: no stored energy reading for s5 " in result.stderr


def test_every_node_of_the_target_is_listed_and_the_missing_ones_named(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "-q", "telemetry", "energy", "s[1-5]", "--since", "10m")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["s1", "s2", "s3", "s4", "s5"]  # was s1-s3
    assert [row[2] for row in rows[3:]] == ["-", "-"]
    assert "warning: no stored energy reading for s[4-5] (2 nodes)" in result.stderr  # kept under -q


def test_a_window_without_data_names_every_node(cli: Any, factory: Path) -> None:
    args = ("--config", str(factory), "telemetry", "energy", "s[1-3]", "--since", "3h", "--until", "2h", "-o", "json")
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert [(i["node"], i["gpus"], i["energy_kwh"]) for i in result.json()["items"]] == [
        ("s1", 2, None),
        ("s2", 2, None),
        ("s3", 2, None),
    ]
    assert "warning: no stored energy reading for s[1-3] (3 nodes)" in result.stderr


def test_no_warning_when_every_node_has_a_reading(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "telemetry", "energy", "s[1-3]", "--since", "10m")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
