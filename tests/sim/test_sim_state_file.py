"""A hand-edited state file is not trusted: limits outside the GPU's range reset, an unusable file set aside.

A driver never reports an enforced limit of 900 W on a 200-700 W board, and a garbage file silently re-created
lost the energy counter and faults without a word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factoryctl.sim.state import state_path


def edit_limits(path: Path, limits: dict[int, Any]) -> None:
    data = json.loads(path.read_text())
    for index, limit in limits.items():
        data["gpus"][index]["limit_w"] = limit
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("limit", [900, -5, 199.9, "300", True, float("nan"), float("inf")])
def test_a_limit_outside_the_range_is_reset_with_a_warning(tmp_path, make_node, capsys, limit: Any) -> None:
    make_node(gpus=4).set_power_limit(1, 450)
    path = state_path(tmp_path / "state", "default", "n1")
    edit_limits(path, {2: limit})
    node = make_node(profile=None, gpus=None)
    assert node.reading(2).limit_w == 700
    assert node.reading(1).limit_w == 450  # a limit in range is kept
    warning = capsys.readouterr().err
    assert f"{path}: GPU 2's power limit" in warning
    assert "outside its range 200-700 W" in warning
    assert json.loads(path.read_text())["gpus"][2]["limit_w"] is None  # repaired once, not warned on every read
    make_node(profile=None, gpus=None).reading(2)
    assert capsys.readouterr().err == ""


def test_a_limit_edited_under_a_running_reader_is_reset(tmp_path, make_node, capsys) -> None:
    node = make_node(gpus=2)
    assert node.reading(0).limit_w == 700
    path = state_path(tmp_path / "state", "default", "n1")
    edit_limits(path, {0: 900})
    assert node.reading(0).limit_w == 700
    assert "GPU 0's power limit 900 W is outside its range" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["{not json", "", "[]", '{"version": 1, "profile": "h100-sxm", "gpus": "x"}'])
def test_an_unusable_state_file_is_moved_aside(tmp_path, make_node, capsys, text: str) -> None:
    make_node()
    path = state_path(tmp_path / "state", "default", "n1")
    path.write_text(text)
    node = make_node()
    assert node.reading(0).limit_w == 700
    bad = path.with_name("n1.json.bad")
    assert bad.read_text() == text  # kept for the operator to look at, not overwritten
    warning = capsys.readouterr().err
    assert f"{path} is not a usable simulated-node state file" in warning
    assert f"moved it to {bad}" in warning
    assert json.loads(path.read_text())["version"] == 1


def test_the_nvidia_smi_shim_reports_the_default_for_a_bad_limit(tmp_path, make_node) -> None:
    make_node(gpus=2)
    path = state_path(tmp_path / "state", "default", "n1")
    edit_limits(path, {0: 900, 1: -5})
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl.sim.smi", "--node", "n1", "--state-dir", str(tmp_path / "state"),
         "--query-gpu=index,enforced.power.limit", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line.split(", ")[1] for line in done.stdout.splitlines()] == ["700.00", "700.00"]
    assert "GPU 0's power limit 900 W" in done.stderr
    assert "GPU 1's power limit -5 W" in done.stderr


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("gpu", "ecc_volatile", "x"),
        ("gpu", "ecc_aggregate", -1),
        ("gpu", "ambient_offset_c", "hot"),
        ("gpu", "lost", "yes"),
        ("checkpoint", "energy_j", -5e9),
        ("checkpoint", "temperature_c", "80"),
        ("node", "workload", "busy"),
        ("node", "seed", "seven"),
        ("node", "unsupported", "ecc_uncorrected"),
        ("event", "data", "79"),
        ("process", "load", "full"),
    ],
)
def test_a_field_of_the_wrong_type_or_range_sets_the_file_aside(tmp_path, driver, capsys, where, field, value) -> None:
    """Every field the driver reads is checked: `"ecc_volatile": "x"` made its calls raise ValueError (the agent
    exited) and a checkpoint of -5e9 J made nvmlDeviceGetTotalEnergyConsumption negative."""
    nvml = driver()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    nvml.sim_node().inject("xid", [0], 31)
    nvml.sim_node().register_process(1, [0])  # pid 1 lives as long as the machine
    path = state_path(tmp_path / "state", "default", "n1")
    data = json.loads(path.read_text())
    gpu = data["gpus"][0]
    item = {"gpu": gpu, "checkpoint": gpu["checkpoint"], "node": data}.get(where)
    item = item if item is not None else data["events" if where == "event" else "processes"][0]
    item[field] = value
    path.write_text(json.dumps(data))
    for reader in (nvml.sim_node(), None):  # one already running, and a process opening it afresh
        if reader is None:
            path.write_text(json.dumps(data))
            nvml.configure(node="n1", state_dir=str(tmp_path / "state"), workload="idle")
            nvml.nvmlInit()
            handle = nvml.nvmlDeviceGetHandleByIndex(0)
        assert nvml.nvmlDeviceGetTotalEccErrors(handle, 1, 0) == 0
        assert 0 <= nvml.nvmlDeviceGetTotalEnergyConsumption(handle) < 10**6
        assert 30 <= nvml.nvmlDeviceGetTemperature(handle, 0) <= 40  # idle, afresh
        assert f"moved it to {path}.bad" in capsys.readouterr().err
        assert json.loads(path.with_name("n1.json.bad").read_text()) == data
