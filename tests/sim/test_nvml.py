"""The pynvml-shaped surface: units, errors, unsupported fields, lost GPUs and events."""

from __future__ import annotations

import pytest

from factoryctl.sim import nvml


def test_units_are_pynvml_units(driver, clock):
    n = driver()
    assert n.nvmlDeviceGetCount() == 4
    h = n.nvmlDeviceGetHandleByIndex(2)
    assert n.nvmlDeviceGetIndex(h) == 2
    power = n.nvmlDeviceGetPowerUsage(h)
    assert isinstance(power, int)
    assert 50_000 < power < 100_000
    assert n.nvmlDeviceGetEnforcedPowerLimit(h) == 700_000
    assert n.nvmlDeviceGetPowerManagementLimit(h) == 700_000
    assert n.nvmlDeviceGetPowerManagementLimitConstraints(h) == [200_000, 700_000]
    assert n.nvmlDeviceGetPowerManagementDefaultLimit(h) == 700_000
    before = n.nvmlDeviceGetTotalEnergyConsumption(h)
    clock.advance(10.0)
    delta = n.nvmlDeviceGetTotalEnergyConsumption(h) - before
    assert 500_000 < delta < 900_000  # mJ: ~72 W for 10 s
    mem = n.nvmlDeviceGetMemoryInfo(h)
    assert mem.total == 80 * 1024 * 2**20
    assert mem.used + mem.free == mem.total
    assert n.nvmlDeviceGetUtilizationRates(h).gpu == 0
    assert n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU) > 25
    assert n.nvmlDeviceGetTemperatureThreshold(h, n.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN) == 87
    assert n.nvmlDeviceGetTemperatureThreshold(h, n.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN) == 92
    assert n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM) == 345
    assert n.nvmlDeviceGetCurrentClocksEventReasons(h) == n.nvmlClocksEventReasonGpuIdle
    assert n.nvmlDeviceGetCurrentClocksThrottleReasons(h) == n.nvmlClocksEventReasonGpuIdle
    errs = n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC)
    assert errs == 0
    assert n.nvmlDeviceGetComputeRunningProcesses(h) == []
    assert n.nvmlDeviceGetName(h) == "NVIDIA H100 80GB HBM3"
    assert n.nvmlDeviceGetHandleByUUID(n.nvmlDeviceGetUUID(h)) == h


def test_set_power_limit_in_milliwatts_and_out_of_range_is_invalid_argument(driver):
    n = driver()
    h = n.nvmlDeviceGetHandleByIndex(0)
    n.nvmlDeviceSetPowerManagementLimit(h, 350_000)
    assert n.nvmlDeviceGetEnforcedPowerLimit(h) == 350_000
    for bad in (900_000, 199_999):
        with pytest.raises(n.NVMLError_InvalidArgument) as err:
            n.nvmlDeviceSetPowerManagementLimit(h, bad)
        assert err.value.value == n.NVML_ERROR_INVALID_ARGUMENT
    assert n.nvmlDeviceGetEnforcedPowerLimit(h) == 350_000


def test_errors_map_codes_to_pynvml_subclasses():
    err = nvml.NVMLError(nvml.NVML_ERROR_GPU_IS_LOST)
    assert type(err).__name__ == "NVMLError_GpuIsLost"
    assert isinstance(err, nvml.NVMLError_GpuIsLost)
    assert str(err) == "GPU is lost"
    assert nvml.NVMLError_NotSupported().value == nvml.NVML_ERROR_NOT_SUPPORTED
    assert str(nvml.NVMLError(12345)) == "NVML Error with code 12345"


def test_calls_before_init_are_uninitialized(tmp_path):
    nvml.configure(node="n1", state_dir=str(tmp_path))
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.nvmlShutdown()
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


def test_bad_index_is_invalid_argument(driver):
    n = driver()
    with pytest.raises(n.NVMLError_InvalidArgument):
        n.nvmlDeviceGetHandleByIndex(4)


def test_unsupported_fields_raise_not_supported(driver):
    n = driver(unsupported=["ecc_uncorrected", "nvmlDeviceGetTotalEnergyConsumption"])
    h = n.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(n.NVMLError_NotSupported):
        n.nvmlDeviceGetTotalEccErrors(h, 1, 0)
    with pytest.raises(n.NVMLError_NotSupported):
        n.nvmlDeviceGetTotalEnergyConsumption(h)
    assert n.nvmlDeviceGetPowerUsage(h) > 0


def test_unknown_unsupported_field_is_refused():
    with pytest.raises(ValueError, match="not a GPU field"):
        nvml.configure(node="n1", unsupported=["warp_drive"])


def test_lost_gpu_raises_gpu_is_lost_until_reset(driver):
    n = driver()
    h = n.nvmlDeviceGetHandleByIndex(1)  # had before the loss
    n.sim_node().inject("lost", gpus=[1])
    with pytest.raises(n.NVMLError_GpuIsLost):
        n.nvmlDeviceGetPowerUsage(h)
    assert n.nvmlDeviceGetPowerUsage(n.nvmlDeviceGetHandleByIndex(0)) > 0
    n.sim_node().inject("reset")
    assert n.nvmlDeviceGetPowerUsage(h) > 0


def test_xid_events_are_delivered_to_registered_sets(driver):
    n = driver()
    events = n.nvmlEventSetCreate()
    for i in range(4):
        n.nvmlDeviceRegisterEvents(n.nvmlDeviceGetHandleByIndex(i), n.nvmlEventTypeXidCriticalError, events)
    with pytest.raises(n.NVMLError_Timeout):
        n.nvmlEventSetWait_v2(events, 0)
    n.sim_node().inject("xid", gpus=[3], xid=48)
    event = n.nvmlEventSetWait_v2(events, 0)
    assert (n.nvmlDeviceGetIndex(event.device), event.eventType, event.eventData) == (3, 8, 48)
    with pytest.raises(n.NVMLError_Timeout):
        n.nvmlEventSetWait_v2(events, 0)
    n.nvmlEventSetFree(events)


def test_xid_79_means_the_gpu_fell_off_the_bus(driver):
    n = driver()
    n.sim_node().inject("xid", gpus=[0], xid=79)
    with pytest.raises(n.NVMLError_GpuIsLost):
        n.nvmlDeviceGetName(n.nvmlDeviceGetHandleByIndex(0))


def test_ecc_injection_counts_uncorrected_errors(driver):
    n = driver()
    node = n.sim_node()
    node.inject("ecc", gpus=[2])
    node.inject("ecc", gpus=[2])
    h = n.nvmlDeviceGetHandleByIndex(2)
    assert n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC) == 2
    node.inject("reset")
    assert n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_VOLATILE_ECC) == 0
    assert n.nvmlDeviceGetTotalEccErrors(h, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, n.NVML_AGGREGATE_ECC) == 2
