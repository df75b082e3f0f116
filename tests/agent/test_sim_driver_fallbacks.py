"""The agent's fallbacks for older or smaller boards run under the simulated driver as under the real one.

A board without ECC refuses a registration that names ECC events (NVML_ERROR_NOT_SUPPORTED, nothing registered):
the agent then registers XIDs alone. A driver before R535 has no nvmlDeviceGetCurrentClocksEventReasons
(pynvml: NVMLError_FunctionNotFound): the agent asks the deprecated throttle-reasons call. Both go through the
simulated driver itself, counted at the pynvml boundary, with nothing patched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.sampler import GpuSampler, node_sample
from factoryctl.sim import nvml as sim


class RecordingDriver:
    """The simulated driver, recording each device call's name and its outcome (the error class name, or "ok")."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.registered: list[int] = []

    def __getattr__(self, name: str) -> Any:
        fn = getattr(sim, name)
        if not (callable(fn) and name.startswith("nvmlDevice")):
            return fn

        def call(*args: Any) -> Any:
            if name == "nvmlDeviceRegisterEvents":
                self.registered.append(int(args[1]))
            try:
                value = fn(*args)
            except sim.NVMLError as exc:
                self.calls[(name, type(exc).__name__)] += 1
                raise
            self.calls[(name, "ok")] += 1
            return value

        return call


@pytest.fixture
def configure(tmp_path: Path) -> Iterator[Any]:
    def setup(**kwargs: Any) -> None:
        sim.configure(node="f1", state_dir=str(tmp_path), profile="h100-sxm", gpus=1, workload="idle", **kwargs)

    yield setup
    sim.configure(node="unused")


def test_a_board_without_ecc_gets_xid_events_through_the_fallback_registration(configure: Any) -> None:
    configure(unsupported=["ecc_uncorrected"])
    driver = RecordingDriver()
    sampler = GpuSampler(NvmlSession(driver))
    first = node_sample(sampler, 1, "sim", {})["gpus"][0]
    xid, dbe = sim.nvmlEventTypeXidCriticalError, sim.nvmlEventTypeDoubleBitEccError
    assert driver.registered == [xid | dbe, xid]  # refused as a whole, then XIDs alone
    assert driver.calls[("nvmlDeviceRegisterEvents", "NVMLError_NotSupported")] == 1
    assert driver.calls[("nvmlDeviceRegisterEvents", "ok")] == 1
    assert first["ecc_uncorrected"] is None
    assert first["null_reasons"]["ecc_uncorrected"] == "not supported"
    sim.sim_node().inject("xid", [0], 43)
    after = node_sample(sampler, 1, "sim", {})["gpus"][0]
    assert [x["xid"] for x in after["xid_events"]] == [43]


def test_a_driver_before_r535_gets_throttle_reasons_through_the_deprecated_call(configure: Any) -> None:
    configure(driver_version="525.147.05")
    driver = RecordingDriver()
    sampler = GpuSampler(NvmlSession(driver))
    gpus = [node_sample(sampler, 1, "sim", {})["gpus"][0] for _ in range(2)]
    for gpu in gpus:
        assert gpu["throttle_reasons"] == ["GpuIdle"]  # an idle board
        assert "throttle_reasons" not in gpu["null_reasons"]
    assert driver.calls[("nvmlDeviceGetCurrentClocksEventReasons", "NVMLError_FunctionNotFound")] == 2
    assert driver.calls[("nvmlDeviceGetCurrentClocksThrottleReasons", "ok")] == 2


def test_a_current_driver_answers_the_clocks_event_reasons_call(configure: Any) -> None:
    configure()
    driver = RecordingDriver()
    node_sample(GpuSampler(NvmlSession(driver)), 1, "sim", {})
    assert driver.calls[("nvmlDeviceGetCurrentClocksEventReasons", "ok")] == 1
    assert driver.calls[("nvmlDeviceGetCurrentClocksThrottleReasons", "ok")] == 0
