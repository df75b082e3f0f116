"""`telemetry energy`: a node total that leaves out a GPU with no reading says so.

A node whose GPU 1 was lost all window read `energy_kwh 0.146`, `source "counter"`, and `per_gpu[1].energy_kwh
null` with no source, where docs/telemetry.md gives that GPU source `none`: a script summing the totals could not
tell the node's was short. The GPU's source is in `per_gpu`, the node's source ends `+none`, and a warning (kept
under -q) names the node. A real simulated node (local transport), its GPU lost by `sim inject`, two real sweeps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory


@pytest.fixture
def swept(cli: Any, tmp_path: Path) -> Path:
    """e1 and e2, two H100s each, e2's GPU 1 lost before two sweeps (the counter needs two readings)."""
    path = write_factory(tmp_path, "e[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)
    assert cli("--config", str(path), "-q", "sim", "inject", "e2/1", "--lost").exit_code == 0
    for _ in range(2):
        result = cli("--config", str(path), "-q", "telemetry", "collect")
        assert result.exit_code == 0, result.stderr
    return path


def test_a_node_missing_a_gpu_is_counter_plus_none(cli: Any, swept: Path) -> None:
    result = cli("--config", str(swept), "-q", "telemetry", "energy", "--since", "1h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = {item["node"]: item for item in result.json()["items"]}
    assert items["e1"]["source"] == "counter"
    assert [(g["gpu"], g["source"]) for g in items["e1"]["per_gpu"]] == [(0, "counter"), (1, "counter")]
    assert items["e2"]["source"] == "counter+none"
    per_gpu = items["e2"]["per_gpu"]
    assert [(g["gpu"], g["source"], g["energy_kwh"] is None) for g in per_gpu] == [
        (0, "counter", False),
        (1, "none", True),
    ]
    assert items["e2"]["energy_kwh"] == per_gpu[0]["energy_kwh"]  # the GPUs with readings only
    warning = "factoryctl: warning: no stored energy reading for some GPUs of e2 since "
    assert [line for line in result.stderr.splitlines() if line.startswith(warning)], result.stderr  # kept under -q
    assert "for some GPUs of e1" not in result.stderr


def test_csv_shows_the_incomplete_node_in_its_source_column(cli: Any, swept: Path) -> None:
    result = cli("--config", str(swept), "-q", "telemetry", "energy", "--since", "1h", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    rows = {row["node"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows["e1"]["source"], rows["e2"]["source"]) == ("counter", "counter+none")
