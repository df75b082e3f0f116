"""A cooling failure's readings stay at GPU max, `sim inject` names every missing GPU, `nodes check` says the sim fix.

Under `hot` a loaded GPU read 86 °C on an 85 °C GPU max (its temperature overshoots the threshold by up to 0.8 °C
in the second before the slowdown acts, and NVML's whole degrees were rounded), and 85 °C with and without
SwThermalSlowdown. `sim inject n35/0-9 --lost` on a 4-GPU node said `has no GPU 4`, not 4-9; `nodes check` told a
simulated node's lost GPU to look at dmesg, where the fix is a simulated driver reset.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factoryctl.sim.profiles import PROFILES

FACTORY = """\
name: lab
nodes:
  n1: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 3}}
"""


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_hot_gpu_never_reads_above_gpu_max_and_reads_it_only_while_slowed(driver, clock, profile):
    n = driver(profile=profile, gpus=1)
    h = n.nvmlDeviceGetHandleByIndex(0)
    gpu_max = n.nvmlDeviceGetTemperatureThreshold(h, n.NVML_TEMPERATURE_THRESHOLD_GPU_MAX)
    node = n.sim_node()
    node.register_process(os.getpid(), [0])  # full load, all the time
    node.inject("hot")
    clock.advance(300.0)  # well into the slowdown: the temperature now cycles around GPU max
    seen = set()
    for _ in range(300):
        clock.advance(1.0)
        temperature = n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)
        slowed = bool(n.nvmlDeviceGetCurrentClocksEventReasons(h) & n.nvmlClocksEventReasonSwThermalSlowdown)
        seen.add((temperature, slowed))
    assert max(t for t, _ in seen) == gpu_max  # it gets there, and never above
    assert {slowed for t, slowed in seen if t == gpu_max} == {True}  # at GPU max the driver is holding power down
    assert {slowed for t, slowed in seen if t < gpu_max} == {False}


def test_temperature_is_whole_degrees_not_rounded_up(driver, clock):
    """NVML's temperature is an unsigned int: a sensor at 85.6 °C has not reached 86 °C."""
    n = driver(gpus=1)
    h = n.nvmlDeviceGetHandleByIndex(0)
    node = n.sim_node()
    node.register_process(os.getpid(), [0])  # heating: the temperature passes through every fraction of a degree
    fractions = set()
    for _ in range(60):
        clock.advance(1.0)
        exact = node.reading(0).temperature_c
        assert n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU) == int(exact)
        fractions.add(exact - int(exact) >= 0.5)
    assert fractions == {True, False}


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


def test_inject_names_every_missing_gpu_folded(cli, factory):
    result = cli("--config", str(factory), "sim", "inject", "n1/0-9", "--lost")
    assert result.exit_code == 2, result.stderr
    assert "n1 has no GPUs 4-9 (it has GPUs 0-3); nothing was injected." in result.stderr
    result = cli("--config", str(factory), "sim", "inject", "n1/2,5,7-8", "--lost")
    assert "n1 has no GPUs 5,7-8 (it has GPUs 0-3)" in result.stderr
    result = cli("--config", str(factory), "sim", "inject", "n1/4", "--lost")
    assert "n1 has no GPU 4 (it has GPUs 0-3)" in result.stderr


def test_nodes_check_tells_a_simulated_lost_gpu_to_reset(cli, factory):
    assert cli("--config", str(factory), "sim", "inject", "n1/1-2", "--lost").exit_code == 0
    doc = cli("--config", str(factory), "nodes", "check", "n1", "-o", "json").json()
    (nvml,) = [s for s in doc["items"][0]["steps"] if s["step"] == "nvml"]
    assert nvml["status"] == "warn"
    assert "factoryctl sim inject n1/1-2 --reset" in nvml["fix"]
    assert "dmesg" not in nvml["fix"]
    assert cli("--config", str(factory), "sim", "inject", "n1/1-2", "--reset").exit_code == 0
    doc = cli("--config", str(factory), "nodes", "check", "n1", "-o", "json").json()
    (nvml,) = [s for s in doc["items"][0]["steps"] if s["step"] == "nvml"]
    assert nvml["status"] == "ok"


def test_a_real_nodes_lost_gpu_is_still_told_to_look_for_xids():
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.diagnose import lost_gpu_fix

    assert "dmesg" in lost_gpu_fix(NodeSpec(name="g1", host="g1"), [3])
