"""Persisted node state: setters change getters across instances and processes; faults; atomic, locked writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factoryctl.sim.state import SimNode, state_path


def test_state_file_is_keyed_by_factory_and_node(tmp_path, make_node):
    make_node("gpu01", factory="lab")
    path = state_path(tmp_path / "state", "lab", "gpu01")
    assert path == tmp_path / "state" / "lab" / "gpu01.json"
    data = json.loads(path.read_text())
    assert data["profile"] == "h100-sxm"
    assert len(data["gpus"]) == 8


def test_a_limit_set_by_one_instance_is_read_by_the_next(make_node):
    make_node().set_power_limit(3, 420)
    again = make_node(profile=None, gpus=None)
    assert again.reading(3).limit_w == 420
    assert again.reading(2).limit_w == 700


def test_limits_outside_the_range_are_refused_and_change_nothing(make_node):
    node = make_node()
    with pytest.raises(ValueError, match="200-700 W"):
        node.set_power_limit(0, 701)
    assert node.reading(0).limit_w == 700


def test_a_running_instance_sees_another_process_change(tmp_path, make_node, clock):
    node = make_node()
    assert node.reading(1).limit_w == 700
    code = (
        f"from factoryctl.sim.state import SimNode;SimNode({str(tmp_path / 'state')!r}, 'n1').set_power_limit(1, 333)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert node.reading(1).limit_w == 333


def test_reset_clears_limits_faults_and_the_energy_counter_and_reboot_too(make_node, clock):
    node = make_node(workload="idle")
    node.set_power_limit(0, 250)
    node.inject("lost", gpus=[1])
    node.inject("ecc", gpus=[2])
    clock.advance(100.0)
    assert node.reading(0).energy_j > 5000
    node.inject("reset")
    r0, r1, r2 = (node.reading(i) for i in range(3))
    assert r0.limit_w == 700
    assert not r1.lost
    assert r2.ecc_volatile == 0
    assert r0.energy_j < 1.0  # a driver reload restarts the counter (NVML: "since the driver was last reloaded")
    clock.advance(100.0)
    node.set_power_limit(0, 250)
    node.inject("reboot")
    after = node.reading(0)
    assert after.energy_j < 1.0
    assert after.limit_w == 700
    assert node.boot_time == clock.now


def test_inject_validates_its_arguments(make_node):
    node = make_node()
    with pytest.raises(ValueError, match="unknown fault"):
        node.inject("meteor")
    with pytest.raises(ValueError, match="XID"):
        node.inject("xid")
    with pytest.raises(ValueError, match="no GPU 8"):
        node.inject("lost", gpus=[8])


def test_a_different_profile_recreates_the_hardware(make_node):
    make_node().set_power_limit(0, 300)
    a100 = make_node(profile="a100-sxm4-80gb", gpus=4)
    assert a100.gpu_count == 4
    assert a100.reading(0).limit_w == 400
    assert a100.reading(0).name == "NVIDIA A100-SXM4-80GB"


def test_a_corrupt_state_file_is_recreated(tmp_path, make_node):
    make_node()
    state_path(tmp_path / "state", "default", "n1").write_text("{not json")
    node = make_node()
    assert node.reading(0).limit_w == 700


def test_concurrent_writers_lose_no_update(tmp_path, make_node):
    make_node(gpus=2)
    code = (
        "from factoryctl.sim.state import SimNode\n"
        f"n = SimNode({str(tmp_path / 'state')!r}, 'n1')\n"
        "for _ in range(10): n.inject('ecc', gpus=[1])\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    assert SimNode(tmp_path / "state", "n1").reading(1).ecc_aggregate == 40
