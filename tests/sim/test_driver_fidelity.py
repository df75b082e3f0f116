"""The simulated driver behaves as the real one at the pynvml boundary where review session 13 found it did not.

Each case is what nvidia-ml-py over a real libnvidia-ml does (its ctypes argument conversion, NVML's documented
return codes), checked against the simulator configured by the `driver` fixture (tests/sim/conftest.py).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from factoryctl.sim import nvml


def test_a_reset_is_a_driver_reload_and_restarts_the_energy_counter(driver: Any, clock: Any) -> None:
    n = driver(gpus=1)
    handle = n.nvmlDeviceGetHandleByIndex(0)
    clock.advance(600)
    assert n.nvmlDeviceGetTotalEnergyConsumption(handle) > 30_000_000
    n.sim_node().inject("reset", [0])
    assert n.nvmlDeviceGetTotalEnergyConsumption(handle) == 0
    clock.advance(10)
    assert 0 < n.nvmlDeviceGetTotalEnergyConsumption(handle) < 2_000_000  # 10 s of an idle H100 (~72 W)


def test_energy_drawn_while_a_gpu_was_lost_is_never_reported(driver: Any, clock: Any) -> None:
    n = driver(gpus=1)
    handle = n.nvmlDeviceGetHandleByIndex(0)
    n.sim_node().inject("xid", [0], 79)
    clock.advance(600)
    with pytest.raises(n.NVMLError_GpuIsLost):
        n.nvmlDeviceGetTotalEnergyConsumption(handle)
    n.sim_node().inject("reset", [0])
    assert n.nvmlDeviceGetTotalEnergyConsumption(handle) == 0


def test_more_shutdowns_than_inits_are_no_error(driver: Any) -> None:
    n = driver()
    n.nvmlShutdown()
    n.nvmlShutdown()  # NVML: "no error is reported if nvmlShutdown() is called more times than nvmlInit()"
    with pytest.raises(n.NVMLError_Uninitialized):
        n.nvmlDeviceGetCount()
    n.nvmlInit()
    assert n.nvmlDeviceGetCount() == 4


def test_shutdown_before_any_init_is_uninitialized() -> None:
    nvml.configure(node="never-initialised")
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlShutdown()


def test_ecc_events_are_not_supported_on_a_board_without_ecc(driver: Any) -> None:
    n = driver(unsupported=["ecc_uncorrected"])
    handle = n.nvmlDeviceGetHandleByIndex(0)
    xid, dbe = n.nvmlEventTypeXidCriticalError, n.nvmlEventTypeDoubleBitEccError
    assert n.nvmlDeviceGetSupportedEventTypes(handle) == xid
    events = n.nvmlEventSetCreate()
    with pytest.raises(n.NVMLError_NotSupported):
        n.nvmlDeviceRegisterEvents(handle, xid | dbe, events)
    assert events.masks == {}  # none registered
    n.nvmlDeviceRegisterEvents(handle, xid, events)
    assert events.masks == {0: xid}


def test_event_types_the_board_cannot_deliver_are_not_supported(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(0)
    assert n.nvmlDeviceGetSupportedEventTypes(handle) == 0xA
    events = n.nvmlEventSetCreate()
    with pytest.raises(n.NVMLError_NotSupported):
        n.nvmlDeviceRegisterEvents(handle, 0xFFFF, events)
    n.nvmlDeviceRegisterEvents(handle, 0xA, events)
    assert events.masks == {0: 0xA}


def test_a_driver_before_r535_has_no_clocks_event_reasons_function(driver: Any) -> None:
    n = driver(driver_version="525.147.05")
    handle = n.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(n.NVMLError_FunctionNotFound):
        n.nvmlDeviceGetCurrentClocksEventReasons(handle)
    assert n.nvmlDeviceGetCurrentClocksThrottleReasons(handle) == n.nvmlClocksThrottleReasonGpuIdle


def test_r535_and_later_answer_both_names(driver: Any) -> None:
    n = driver(driver_version="535.54.03")
    handle = n.nvmlDeviceGetHandleByIndex(0)
    assert n.nvmlDeviceGetCurrentClocksEventReasons(handle) == n.nvmlDeviceGetCurrentClocksThrottleReasons(handle)


def test_a_garbage_state_file_with_an_unusable_lock_is_an_nvml_error(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(0)
    node = n.sim_node()
    node.path.write_text("not json")
    os.remove(node.lock_path)
    os.mkdir(node.lock_path)
    for call in (
        lambda: n.nvmlDeviceGetPowerUsage(handle),
        lambda: n.nvmlDeviceGetHandleByIndex(1),
        lambda: n.nvmlDeviceGetHandleByUUID("GPU-x"),
        lambda: n.nvmlEventSetCreate(),
        lambda: n.nvmlDeviceSetPowerManagementLimit(handle, 300_000),
    ):
        with pytest.raises(n.NVMLError_Unknown):
            call()


def test_init_with_an_unusable_state_dir_is_an_nvml_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    nvml.configure(node="n1", state_dir=str(not_a_dir), gpus=1)
    try:
        with pytest.raises(nvml.NVMLError_Unknown):
            nvml.nvmlInit()
    finally:
        nvml.configure(node="unused")


def _ctypes_rejects(value: Any) -> bool:
    try:
        ctypes.c_uint(value)
    except TypeError:
        return True
    return False


@pytest.mark.parametrize(
    ("call", "value"),
    [
        pytest.param(lambda n, h, v: n.nvmlDeviceGetHandleByIndex(v), 1.0, id="GetHandleByIndex(1.0)"),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetHandleByIndex(v), "1", id="GetHandleByIndex('1')"),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetTemperature(h, v), 0.0, id="GetTemperature(h, 0.0)"),
        pytest.param(
            lambda n, h, v: n.nvmlDeviceGetTemperatureThreshold(h, v), 1.0, id="GetTemperatureThreshold(h, 1.0)"
        ),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetClockInfo(h, v), 1.0, id="GetClockInfo(h, 1.0)"),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetMaxClockInfo(h, v), 1.0, id="GetMaxClockInfo(h, 1.0)"),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetTotalEccErrors(h, v, 0), 1.0, id="GetTotalEccErrors(h, 1.0, 0)"),
        pytest.param(lambda n, h, v: n.nvmlDeviceGetTotalEccErrors(h, 1, v), 0.0, id="GetTotalEccErrors(h, 1, 0.0)"),
        pytest.param(
            lambda n, h, v: n.nvmlDeviceRegisterEvents(h, v, n.nvmlEventSetCreate()), 8.0, id="RegisterEvents(h, 8.0)"
        ),
        pytest.param(
            lambda n, h, v: n.nvmlEventSetWait_v2(n.nvmlEventSetCreate(), v), 0.5, id="EventSetWait_v2(es, 0.5)"
        ),
    ],
)
def test_arguments_ctypes_would_reject_are_a_type_error(driver: Any, call: Any, value: Any) -> None:
    n = driver()
    assert _ctypes_rejects(value)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        call(n, n.nvmlDeviceGetHandleByIndex(0), value)


def test_integers_wrap_as_c_uint_wraps_them(driver: Any) -> None:
    n = driver()
    assert n.nvmlDeviceGetIndex(n.nvmlDeviceGetHandleByIndex(2**32 + 1)) == 1
    events = n.nvmlEventSetCreate()
    n.nvmlDeviceRegisterEvents(n.nvmlDeviceGetHandleByIndex(0), n.nvmlEventTypeXidCriticalError, events)
    later = threading.Timer(0.3, lambda: n.sim_node().inject("xid", [0], 13))
    later.start()
    try:  # -1 is c_uint's 4294967295 ms: it waits for the event, rather than timing out at once
        assert n.nvmlEventSetWait_v2(events, -1).eventData == 13
    finally:
        later.join()


def test_an_undefined_threshold_type_is_an_invalid_argument(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(n.NVMLError_InvalidArgument):
        n.nvmlDeviceGetTemperatureThreshold(handle, 99)
    with pytest.raises(n.NVMLError_NotSupported):  # defined (acoustic), but no simulated board has it
        n.nvmlDeviceGetTemperatureThreshold(handle, 4)


def test_an_undefined_ecc_counter_type_is_an_invalid_argument_for_corrected_errors_too(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(0)
    assert n.nvmlDeviceGetTotalEccErrors(handle, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_VOLATILE_ECC) == 0
    with pytest.raises(n.NVMLError_InvalidArgument):
        n.nvmlDeviceGetTotalEccErrors(handle, n.NVML_MEMORY_ERROR_TYPE_CORRECTED, 7)


def test_the_handle_of_a_lost_gpu_is_gpu_is_lost(driver: Any) -> None:
    n = driver()
    n.sim_node().inject("lost", [1])
    with pytest.raises(n.NVMLError_GpuIsLost):
        n.nvmlDeviceGetHandleByIndex(1)
    n.sim_node().inject("reset", [1])
    assert n.nvmlDeviceGetIndex(n.nvmlDeviceGetHandleByIndex(1)) == 1


def test_handles_compare_by_identity_and_do_not_hash_as_pynvml_ones(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(TypeError, match="unhashable"):
        hash(handle)
    assert handle is n.nvmlDeviceGetHandleByIndex(1)  # NVML's one device pointer per GPU
    assert handle is n.nvmlDeviceGetHandleByUUID(n.nvmlDeviceGetUUID(handle))
    assert handle != nvml.SimDeviceHandle(1)
    events = n.nvmlEventSetCreate()
    n.nvmlDeviceRegisterEvents(handle, n.nvmlEventTypeXidCriticalError, events)
    n.sim_node().inject("xid", [1], 79)
    assert n.nvmlEventSetWait_v2(events, 0).device is handle  # the event names the handle already held


def test_a_counter_type_beyond_32_bits_wraps_to_the_volatile_count(driver: Any) -> None:
    n = driver()
    handle = n.nvmlDeviceGetHandleByIndex(0)
    n.sim_node().inject("ecc", [0])
    n.sim_node().inject("reset", [0])  # volatile back to 0, aggregate kept
    uncorrected = n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    assert n.nvmlDeviceGetTotalEccErrors(handle, uncorrected, n.NVML_AGGREGATE_ECC) == 1
    assert n.nvmlDeviceGetTotalEccErrors(handle, uncorrected, 2**32 + n.NVML_VOLATILE_ECC) == 0
