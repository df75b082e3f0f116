"""The agent's one NVML wrapper (nvitop's nvmlQuery idea): lazy init, unsupported -> None + reason, lost -> GpuLost.

Driven through a proxy of the simulated driver that can hide functions or fail, as old or odd real drivers do.
"""

from __future__ import annotations

from typing import Any

import pytest

from factoryctl.agent.nvml import MISSING, NOT_SUPPORTED, DriverUnavailable, GpuLost, NvmlSession
from factoryctl.agent.sampler import GpuSampler, reason_names
from factoryctl.sim import nvml as sim


class Driver:
    """Forwards to the simulated driver, minus `hidden` names; counts nvmlInit calls; can fail init."""

    def __init__(self, hidden: tuple[str, ...] = (), init_error: Exception | None = None) -> None:
        self.hidden = hidden
        self.init_error = init_error
        self.inits = 0

    def __getattr__(self, name: str) -> Any:
        if name in self.hidden:
            raise AttributeError(name)
        return getattr(sim, name)

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error
        sim.nvmlInit()


@pytest.fixture
def configured(tmp_path):
    sim.configure(node="w1", state_dir=str(tmp_path), profile="h100-sxm", gpus=2, workload="idle")
    yield
    sim.configure(node="unused")


@pytest.mark.usefixtures("configured")
def test_init_is_lazy_and_happens_once():
    driver = Driver()
    session = NvmlSession(driver)
    assert driver.inits == 0
    assert session.device_count() == 2
    session.query("nvmlDeviceGetPowerUsage", session.handle(0))
    assert driver.inits == 1


def test_a_failed_init_is_remembered_and_reported():
    driver = Driver(init_error=sim.NVMLError(sim.NVML_ERROR_DRIVER_NOT_LOADED))
    session = NvmlSession(driver)
    for _ in range(3):
        with pytest.raises(DriverUnavailable, match="Driver Not Loaded"):
            session.device_count()
    assert driver.inits == 1


@pytest.mark.usefixtures("configured")
def test_a_missing_function_is_unsupported_and_logged_once(capsys):
    session = NvmlSession(Driver(hidden=("nvmlDeviceGetTotalEnergyConsumption",)))
    handle = session.handle(0)
    for _ in range(3):
        assert session.query("nvmlDeviceGetTotalEnergyConsumption", handle) == (None, MISSING)
    assert capsys.readouterr().err.count("nvmlDeviceGetTotalEnergyConsumption") == 1


@pytest.mark.usefixtures("configured")
def test_not_supported_becomes_none_with_a_reason(tmp_path):
    sim.configure(node="w2", state_dir=str(tmp_path), gpus=1, unsupported=["power_w"])
    session = NvmlSession(Driver())
    assert session.query("nvmlDeviceGetPowerUsage", session.handle(0)) == (None, NOT_SUPPORTED)


@pytest.mark.usefixtures("configured")
def test_a_lost_gpu_raises_gpu_lost_and_samples_all_null():
    session = NvmlSession(Driver())
    handle = session.handle(1)
    sim.sim_node().inject("lost", gpus=[1])
    with pytest.raises(GpuLost):
        session.query("nvmlDeviceGetName", handle)
    gpu = GpuSampler(session).sample(1)
    assert gpu["power_w"] is None
    assert set(gpu["null_reasons"].values()) == {"gpu_lost"}


@pytest.mark.usefixtures("configured")
def test_old_drivers_fall_back_to_throttle_reasons():
    session = NvmlSession(Driver(hidden=("nvmlDeviceGetCurrentClocksEventReasons",)))
    gpu = GpuSampler(session).sample(0)
    assert gpu["throttle_reasons"] == ["GpuIdle"]
    assert "throttle_reasons" not in gpu["null_reasons"]


@pytest.mark.usefixtures("configured")
def test_static_fields_are_read_once():
    calls: list[str] = []

    class Counting(Driver):
        def __getattr__(self, name: str) -> Any:
            fn = super().__getattr__(name)
            if callable(fn) and name.startswith("nvmlDevice"):
                return lambda *a: (calls.append(name), fn(*a))[1]
            return fn

    sampler = GpuSampler(NvmlSession(Counting()))
    for _ in range(3):
        sampler.sample(0)
    assert calls.count("nvmlDeviceGetUUID") == 1
    assert calls.count("nvmlDeviceGetPowerUsage") == 3


def test_reason_names_follow_nvml():
    assert reason_names(0x4 | 0x20) == ["SwPowerCap", "SwThermalSlowdown"]
    assert reason_names(0) == []
