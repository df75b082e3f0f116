"""Device profiles of the simulated driver, from the vendors' data sheets.

Each profile holds what NVML would report for a board of that kind: name, memory, power-limit range, temperature
thresholds and clocks, plus the two constants the physics needs (idle draw and the temperature reached at full
load). Values are typical, not measured on one board; the point is that an H100 looks like an H100 to the tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class DeviceProfile:
    """What one simulated GPU model reports, in SI-ish units (W, MiB, °C, MHz)."""

    key: str
    name: str  # nvmlDeviceGetName
    memory_total_mib: int
    power_default_w: float
    power_min_w: float
    power_max_w: float
    idle_w: float  # draw with nothing running: tens of watts, never 0
    slowdown_c: int
    shutdown_c: int
    sm_clock_max_mhz: int
    sm_clock_idle_mhz: int
    mem_clock_mhz: int
    full_load_c: float  # steady temperature at full load, at the default ambient
    ambient_c: float = 30.0
    thermal_tau_s: float = 40.0  # time constant of the temperature lag

    @property
    def gpu_max_c(self) -> int:
        """NVML's GPU_MAX threshold, 2 °C under SLOWDOWN: from it the driver slows the GPU (software slowdown).

        NVML documents GPU_MAX as where the GPU "can be throttled below base clock" and SLOWDOWN as where it "will
        begin HW slowdown".
        """
        return self.slowdown_c - 2

    @property
    def peak_w(self) -> float:
        """Unconstrained draw of a fully loaded GPU: just under the default limit, so a lowered cap binds."""
        return 0.96 * self.power_default_w


PROFILES: Dict[str, DeviceProfile] = {
    p.key: p
    for p in (
        DeviceProfile(
            key="h100-sxm",
            name="NVIDIA H100 80GB HBM3",
            memory_total_mib=80 * 1024,
            power_default_w=700.0,
            power_min_w=200.0,
            power_max_w=700.0,
            idle_w=72.0,
            slowdown_c=87,
            shutdown_c=92,
            sm_clock_max_mhz=1980,
            sm_clock_idle_mhz=345,
            mem_clock_mhz=2619,
            full_load_c=68.0,
        ),
        DeviceProfile(
            key="a100-sxm4-80gb",
            name="NVIDIA A100-SXM4-80GB",
            memory_total_mib=80 * 1024,
            power_default_w=400.0,
            power_min_w=100.0,
            power_max_w=400.0,
            idle_w=58.0,
            slowdown_c=89,
            shutdown_c=92,
            sm_clock_max_mhz=1410,
            sm_clock_idle_mhz=210,
            mem_clock_mhz=1593,
            full_load_c=64.0,
        ),
        DeviceProfile(
            key="h200-sxm",
            name="NVIDIA H200",
            memory_total_mib=141 * 1024,
            power_default_w=700.0,
            power_min_w=200.0,
            power_max_w=700.0,
            idle_w=76.0,
            slowdown_c=87,
            shutdown_c=92,
            sm_clock_max_mhz=1980,
            sm_clock_idle_mhz=345,
            mem_clock_mhz=3201,
            full_load_c=69.0,
        ),
        DeviceProfile(
            key="b200",
            name="NVIDIA B200",
            memory_total_mib=180 * 1024,
            power_default_w=1000.0,
            power_min_w=200.0,
            power_max_w=1000.0,
            idle_w=120.0,
            slowdown_c=87,
            shutdown_c=92,
            sm_clock_max_mhz=1965,
            sm_clock_idle_mhz=120,
            mem_clock_mhz=3996,
            full_load_c=70.0,
        ),
        DeviceProfile(
            key="l40s",
            name="NVIDIA L40S",
            memory_total_mib=46068,
            power_default_w=350.0,
            power_min_w=100.0,
            power_max_w=350.0,
            idle_w=34.0,
            slowdown_c=88,
            shutdown_c=93,
            sm_clock_max_mhz=2520,
            sm_clock_idle_mhz=210,
            mem_clock_mhz=9001,
            full_load_c=72.0,
        ),
    )
}


def get_profile(key: str) -> DeviceProfile:
    """The profile named `key`; ValueError naming the known ones otherwise."""
    try:
        return PROFILES[key]
    except KeyError:
        raise ValueError(f"unknown GPU profile {key!r}; known: {', '.join(sorted(PROFILES))}") from None
