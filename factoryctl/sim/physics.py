"""The simulated GPU's physics, as pure functions of (identity, second, limit, temperature).

Time is cut into whole seconds. Within one second a GPU's load, power and clocks are constant, so the energy counter
is an exact sum and every process that advances the same persisted checkpoint reaches the same numbers: the agent
streaming telemetry, a one-shot `gpus` command and the nvidia-smi shim agree without talking to each other.

- Load is the larger of a seeded synthetic workload (phases of a few minutes: busy, half busy or idle, with a
  per-GPU tendency so some GPUs are mostly busy and some mostly idle) and the load of registered job ranks.
- Power follows load between the profile's idle draw and its peak, with seeded noise, and is clamped by the
  enforced limit (SwPowerCap) and by thermal slowdown: from NVML's GPU_MAX temperature the driver's software
  slowdown (SwThermalSlowdown) holds power down, aiming a degree under it. The temperature lags, so it overshoots
  GPU_MAX by under a degree (at most 0.8 °C in the second before the slowdown acts, on every profile) and NVML's
  whole degrees (truncated, `nvml.nvmlDeviceGetTemperature`) never read above GPU_MAX. From the SLOWDOWN
  temperature, which NVML documents as where the hardware slowdown begins, HwThermalSlowdown holds it at idle draw.
- Work rate under a cap follows the embedded measured curve (`curve.py`); the SM clock follows the work rate.
- Temperature relaxes towards `ambient + R * power` with the profile's time constant (it lags power).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Dict, Tuple

from factoryctl.sim.curve import throughput_fraction
from factoryctl.sim.profiles import DeviceProfile

# Clock event reason bits (nvmlClocksEventReason*), duplicated here so physics stays import-free.
REASON_GPU_IDLE = 0x1
REASON_SW_POWER_CAP = 0x4
REASON_SW_THERMAL_SLOWDOWN = 0x20
REASON_HW_THERMAL_SLOWDOWN = 0x40
#: Midpoints of 8 equal slices of [0, 1): the jitter and noise values `mean_power_w` averages over.
_GRID = tuple((k + 0.5) / 8 for k in range(8))


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from `parts` (seeded noise that every process reproduces)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class Tick:
    """One GPU during one second."""

    load: float  # 0..1, the fraction of time kernels ran (utilization)
    memory_fraction: float  # 0..1 of the board's memory in use by the synthetic workload
    power_w: float
    throughput: float  # 0..1 work rate relative to the uncapped GPU (0 when idle)
    sm_clock_mhz: int
    reasons: int  # clock event reason bits


class GpuPhysics:
    """The time behaviour of one simulated GPU: identity, profile, seed and its synthetic workload's character."""

    def __init__(self, profile: DeviceProfile, seed: int, factory: str, node: str, index: int, synthetic: bool) -> None:
        self.profile = profile
        self.key: Tuple[object, ...] = (seed, factory, node, index)
        self.synthetic = synthetic
        self.busy_share = 0.1 + 0.8 * unit_hash(*self.key, "busy")
        self.period_s = 120 + int(240 * unit_hash(*self.key, "period"))
        self.offset_s = int(self.period_s * unit_hash(*self.key, "offset"))
        self.resistance = (profile.full_load_c - profile.ambient_c) / profile.peak_w
        self._phase_cache: Tuple[int, float, float] = (-1, 0.0, 0.0)
        #: The thermal bands' edges: no slowdown, software slowdown from GPU max, hardware slowdown from SLOWDOWN.
        self._edges = (-math.inf, float(profile.gpu_max_c), float(profile.slowdown_c), math.inf)

    def _phase_level(self, second: int) -> Tuple[float, float]:
        """(load level, memory fraction) of the phase containing `second`, before the per-second jitter."""
        if not self.synthetic:
            return 0.0, 0.0
        phase = (second + self.offset_s) // self.period_s
        if self._phase_cache[0] != phase:
            r = unit_hash(*self.key, "phase", phase)
            h = unit_hash(*self.key, "level", phase)
            if r < self.busy_share:
                level, memory = 0.8 + 0.2 * h, 0.45 + 0.5 * h
            elif r < self.busy_share + 0.15:
                level, memory = 0.25 + 0.35 * h, 0.15 + 0.3 * h
            else:
                level, memory = 0.0, 0.0
            self._phase_cache = (phase, level, memory)
        return self._phase_cache[1], self._phase_cache[2]

    def synthetic_load(self, second: int) -> Tuple[float, float]:
        """(load, memory fraction) of the seeded background workload at `second`."""
        level, memory = self._phase_level(second)
        if level > 0.0:
            level = min(1.0, level * (0.96 + 0.06 * unit_hash(*self.key, "jitter", second)))
        return level, memory

    def phase_end(self, second: int) -> int:
        """The first second after the synthetic-workload phase that contains `second` (its level changes there)."""
        phase = (second + self.offset_s) // self.period_s
        return (phase + 1) * self.period_s - self.offset_s

    def thermal_limit_w(self, temperature_c: float, ambient_c: float) -> Tuple[float, int]:
        """(the most the thermal slowdown lets the GPU draw, its reason bits) at `temperature_c` (inf, 0: none)."""
        if temperature_c < self._edges[1]:
            return math.inf, 0
        if temperature_c >= self._edges[2]:  # hardware slowdown: clocks halved or more, the board at idle draw
            return self.profile.idle_w, REASON_SW_THERMAL_SLOWDOWN | REASON_HW_THERMAL_SLOWDOWN
        # software slowdown: the driver aims a degree under GPU max, so it reads GPU max at most (whole degrees)
        return max(
            self.profile.idle_w, (self._edges[1] - 1.0 - ambient_c) / self.resistance
        ), REASON_SW_THERMAL_SLOWDOWN

    def _power(
        self, load: float, noise: float, limit_w: float, temperature_c: float, ambient_c: float
    ) -> Tuple[float, float, int]:
        """(power, demand, reasons) at `load` with `noise` in -0.5..0.5, under the limit and thermal slowdown."""
        p = self.profile
        demand = p.idle_w + load * (p.peak_w - p.idle_w) * (1.0 + 0.04 * noise) + noise
        reasons = REASON_GPU_IDLE if load <= 0.0 else 0
        power = demand
        if power > limit_w:
            power = limit_w - 0.4 * abs(noise) * (limit_w / 100.0)
            reasons |= REASON_SW_POWER_CAP
        thermal_w, thermal_reasons = self.thermal_limit_w(temperature_c, ambient_c)
        reasons |= thermal_reasons
        power = min(power, thermal_w)
        return max(power, 0.8 * p.idle_w), demand, reasons

    def step(self, second: int, limit_w: float, temperature_c: float, ambient_c: float, extra_load: float) -> Tick:
        """The GPU's state during `second`, given its enforced limit, temperature and job-rank load."""
        p = self.profile
        load, memory = self.synthetic_load(second)
        load = max(load, min(1.0, extra_load))
        noise = unit_hash(*self.key, "noise", second) - 0.5  # -0.5 .. 0.5
        power, demand, reasons = self._power(load, noise, limit_w, temperature_c, ambient_c)
        if load <= 0.0:
            return Tick(0.0, 0.0, power, 0.0, p.sm_clock_idle_mhz, reasons)
        rate = throughput_fraction(power / demand)
        clock = int(p.sm_clock_idle_mhz + (p.sm_clock_max_mhz - p.sm_clock_idle_mhz) * min(1.0, 0.35 + 0.65 * rate))
        clock = min(p.sm_clock_max_mhz, clock - clock % 15)
        return Tick(load, memory, power, rate, clock, reasons)

    def mean_power_w(self, second: int, limit_w: float, temperature_c: float, ambient_c: float, extra: float) -> float:
        """The mean power over the phase containing `second`: `step`'s power averaged over its jitter and noise.

        Catching up hours the GPU was not read uses it, phase by phase, instead of summing every second: the
        per-second noise and jitter are uniform and independent, so their mean over a phase of minutes differs
        from this by about 0.1 %, and over a day by far less. A midpoint grid averages the clamps (cap, floor)
        as they act second by second.
        """
        level = self._phase_level(second)[0]
        means: Dict[float, float] = {}  # idle, or held at full load by a rank: one load for the whole grid
        total = 0.0
        for jitter in _GRID:
            load = max(min(1.0, level * (0.96 + 0.06 * jitter)) if level > 0.0 else 0.0, min(1.0, extra))
            if load not in means:
                means[load] = self._mean_over_noise(load, limit_w, temperature_c, ambient_c)
            total += means[load]
        return total / len(_GRID)

    def _mean_over_noise(self, load: float, limit_w: float, temperature_c: float, ambient_c: float) -> float:
        """`_power` at `load` averaged over the noise: exact without a clamp (linear in the noise, mean 0)."""
        p = self.profile
        unclamped = (
            temperature_c < p.gpu_max_c and self._power(load, 0.5, limit_w, temperature_c, ambient_c)[1] <= limit_w
        )
        if unclamped:
            return p.idle_w + load * (p.peak_w - p.idle_w)
        thermal_w = self.thermal_limit_w(temperature_c, ambient_c)[0]
        if all(self._power(load, n, limit_w, temperature_c, ambient_c)[0] == thermal_w for n in (-0.5, 0.5)):
            return thermal_w  # the thermal clamp binds at every noise: without it the draw is least at either end
        return sum(self._power(load, n - 0.5, limit_w, temperature_c, ambient_c)[0] for n in _GRID) / len(_GRID)

    def thermal_band(self, temperature_c: float) -> Tuple[float, float]:
        """The temperatures between which `_power`'s thermal slowdown acts the same as at `temperature_c`."""
        edges = self._edges
        band = 0 if temperature_c < edges[1] else 1 if temperature_c < edges[2] else 2
        return edges[band], edges[band + 1]

    def next_temperature(self, temperature_c: float, power_w: float, ambient_c: float, seconds: float = 1.0) -> float:
        """Temperature after `seconds` at `power_w`: first-order lag towards `ambient + R * power`."""
        target = ambient_c + self.resistance * power_w
        return target + (temperature_c - target) * math.exp(-seconds / self.profile.thermal_tau_s)
