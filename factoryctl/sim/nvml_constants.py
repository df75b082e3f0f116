"""The names and values the simulated driver shares with pynvml, and which NVML functions a withheld field silences.

Kept apart from `nvml.py` (which re-exports every name here, so `nvml.NVML_CLOCK_SM` works as `pynvml.NVML_CLOCK_SM`
does) because they are data, not the driver's behaviour. Python 3.9, like the agent that imports it.
"""

from __future__ import annotations

from typing import Dict, Tuple

# Constants, same names and values as pynvml.
NVML_TEMPERATURE_GPU = 0
NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
NVML_TEMPERATURE_THRESHOLD_MEM_MAX = 2
NVML_TEMPERATURE_THRESHOLD_GPU_MAX = 3
NVML_TEMPERATURE_THRESHOLD_COUNT = 8  # thresholds 4-7 (acoustic, GPS) exist; no simulated board has them
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_VIDEO = 3
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonApplicationsClocksSetting = 0x2
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSyncBoost = 0x10
nvmlClocksEventReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = 0x40
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
nvmlClocksEventReasonNone = 0x0
nvmlClocksThrottleReasonGpuIdle = nvmlClocksEventReasonGpuIdle
nvmlClocksThrottleReasonSwPowerCap = nvmlClocksEventReasonSwPowerCap
nvmlClocksThrottleReasonHwSlowdown = nvmlClocksEventReasonHwSlowdown
nvmlClocksThrottleReasonSwThermalSlowdown = nvmlClocksEventReasonSwThermalSlowdown
nvmlClocksThrottleReasonHwThermalSlowdown = nvmlClocksEventReasonHwThermalSlowdown
nvmlClocksThrottleReasonNone = 0x0
nvmlEventTypeSingleBitEccError = 0x1
nvmlEventTypeDoubleBitEccError = 0x2
nvmlEventTypeXidCriticalError = 0x8
nvmlEventTypeNone = 0x0

#: The driver version reported unless `configure(driver_version=...)` chose another (an older driver's nvidia-smi
#: knows fewer --query-gpu properties: factoryctl.sim.smi).
DRIVER_VERSION = "550.90.07"
#: The first driver branch whose library has nvmlDeviceGetCurrentClocksEventReasons (older ones lack the symbol:
#: pynvml raises NVMLError_FunctionNotFound, and callers fall back to nvmlDeviceGetCurrentClocksThrottleReasons).
CLOCKS_EVENT_REASONS_SINCE_BRANCH = 535

# GPU field (docs/cli.md names) -> the NVML functions that answer NOT_SUPPORTED when the inventory lists it
# (`sim.unsupported`, docs/simulated-driver.md, Faults).
UNSUPPORTABLE_FIELDS: Dict[str, Tuple[str, ...]] = {
    "uuid": ("nvmlDeviceGetUUID",),
    "name": ("nvmlDeviceGetName",),
    "utilization_pct": ("nvmlDeviceGetUtilizationRates",),
    "memory_used_mib": ("nvmlDeviceGetMemoryInfo",),
    "memory_total_mib": ("nvmlDeviceGetMemoryInfo",),
    "power_w": ("nvmlDeviceGetPowerUsage",),
    "power_limit_w": (
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceSetPowerManagementLimit",
    ),
    "power_limit_min_w": ("nvmlDeviceGetPowerManagementLimitConstraints",),
    "power_limit_max_w": ("nvmlDeviceGetPowerManagementLimitConstraints",),
    "power_limit_default_w": ("nvmlDeviceGetPowerManagementDefaultLimit",),
    "energy_j": ("nvmlDeviceGetTotalEnergyConsumption",),
    "temperature_c": ("nvmlDeviceGetTemperature",),
    "temperature_slowdown_c": ("nvmlDeviceGetTemperatureThreshold",),
    "sm_clock_mhz": ("nvmlDeviceGetClockInfo",),
    "throttle_reasons": ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
    "ecc_uncorrected": ("nvmlDeviceGetTotalEccErrors",),
    "processes": ("nvmlDeviceGetComputeRunningProcesses",),
}
