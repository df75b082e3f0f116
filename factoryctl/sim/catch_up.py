"""Bringing one simulated GPU's energy counter and temperature from its last checkpoint up to now.

The state file keeps, per GPU, only a checkpoint (time, energy, temperature, and the temperature at the start of the
checkpoint's second); everything since is recomputed from `physics.py` one whole second at a time, so two processes
that advance the same checkpoint agree exactly: a second's power is decided by the temperature at its start, which
a checkpoint taken mid-second keeps for the rest of that second. A GPU nobody read for longer than
`EXACT_CATCH_UP_S` is first caught up phase by phase at each workload phase's mean power (within about 0.1 % of the
per-second sum), so a read after a day takes milliseconds, not a day's seconds. Thermal slowdown switches that mean
power as the temperature crosses the slowdown threshold, which a GPU under a cooling failure does every few tens of
seconds (a phase lasts minutes, the temperature lags by 40 s): each phase is cut where the per-second integration
would switch, each run's length solved from the exponential lag. Pure arithmetic on a cursor, apart from the node's
file and locks (`state.py`). Python 3.9, like the agent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from factoryctl.sim.physics import GpuPhysics, Tick

EXACT_CATCH_UP_S = 600  # beyond this gap, catch up phase by phase at each phase's mean power (physics.py)


@dataclass
class Cursor:
    """Where one GPU's integration stands: the state at `time`, and the current second's tick once computed."""

    time: float  # unix time at which the state below holds
    energy_j: float
    temperature_c: float
    second_start_c: Optional[float] = None  # the temperature at the start of `time`'s second, when `time` is within one
    tick: Optional[Tick] = None  # the current second's tick, once computed
    tick_second: int = -1

    def start_temperature_c(self) -> float:
        """The temperature at the start of the second `time` is in: what that second's power is decided by."""
        if self.second_start_c is None or self.time == math.floor(self.time):
            return self.temperature_c
        return self.second_start_c

    def move(self, physics: GpuPhysics, power_w: float, ambient_c: float, until: float) -> None:
        """Integrate at `power_w` from `time` to `until`: a whole second, or a time within `time`'s second."""
        span = until - self.time
        self.second_start_c = None if until == math.floor(until) else self.start_temperature_c()
        self.energy_j += power_w * span
        self.temperature_c = physics.next_temperature(self.temperature_c, power_w, ambient_c, span)
        self.time = until


@dataclass(frozen=True)
class Conditions:
    """What a GPU runs under while it is caught up: none of it changes between two commits of the state."""

    limit_w: float  # the enforced power limit
    ambient_c: float  # the profile's ambient plus the GPU's injected offset
    extra_load: float  # the load of registered job ranks on it


def _run_end(cursor: Cursor, goal_c: float, band: Tuple[float, float], tau_s: float, end: int) -> int:
    """The first whole second (up to `end`) whose starting temperature leaves `band`, relaxing towards `goal_c`.

    A run at one power lasts while the temperature at each second's start stays in one thermal band
    (`physics.thermal_band`: no slowdown, software, hardware); the temperature relaxes exponentially towards
    `ambient + R * power` with time constant `tau_s`, so the crossing is a logarithm, not a search.
    """
    low, high = band
    first = math.floor(cursor.time) + 1
    at_first = goal_c + (cursor.temperature_c - goal_c) * math.exp(-(first - cursor.time) / tau_s)
    if not low <= at_first < high:
        return min(end, first)
    if goal_c > high:  # the first whole second at or above `high`
        return min(end, first + math.ceil(tau_s * math.log((goal_c - at_first) / (goal_c - high))))
    if goal_c < low:  # the first whole second below `low`
        return min(end, first + math.floor(tau_s * math.log((at_first - goal_c) / (low - goal_c))) + 1)
    return end


def _catch_up_phase(cursor: Cursor, physics: GpuPhysics, end: int, under: Conditions) -> None:
    """Integrate the cursor to the whole second `end`, within one workload phase, at the phase's mean power.

    The mean power is the one of the thermal band the temperature at a second's start is in, as the per-second
    integration decides it: a chunk charged at the power of its first second's temperature was charged full power
    for minutes of a slowdown, 65-81 % too much energy.
    """
    second = math.floor(cursor.time)
    powers: Dict[float, Tuple[float, float]] = {}  # band's lower edge -> (mean power, temperature it tends to)
    while cursor.time < end:
        band = physics.thermal_band(cursor.start_temperature_c())
        if band[0] not in powers:
            inside = band[0] if math.isfinite(band[0]) else band[1] - 1.0  # only the band matters to the power
            power = physics.mean_power_w(second, under.limit_w, inside, under.ambient_c, under.extra_load)
            powers[band[0]] = power, under.ambient_c + physics.resistance * power
        power, goal = powers[band[0]]
        stop = _run_end(cursor, goal, band, physics.profile.thermal_tau_s, end)
        cursor.move(physics, power, under.ambient_c, float(stop))


def advance(cursor: Cursor, physics: GpuPhysics, now: float, under: Conditions, settle: bool = False) -> Cursor:
    """Integrate `cursor` up to the start of the current second (to `now` itself when `settle`), in place."""
    target = math.floor(now)
    ambient, extra, limit = under.ambient_c, under.extra_load, under.limit_w
    while target - cursor.time > EXACT_CATCH_UP_S:
        end = min(physics.phase_end(math.floor(cursor.time)), target - EXACT_CATCH_UP_S // 2)
        _catch_up_phase(cursor, physics, end, under)
    while cursor.time < target:
        second = math.floor(cursor.time)
        tick = cursor.tick if cursor.tick is not None and cursor.tick_second == second else None
        if tick is None:  # a second's tick, once reported, holds to its end (a rank gone meanwhile counts till then)
            tick = physics.step(second, limit, cursor.start_temperature_c(), ambient, extra)
        cursor.move(physics, tick.power_w, ambient, float(second + 1))
        cursor.tick = None
    if cursor.tick_second != target or cursor.tick is None:
        cursor.tick = physics.step(target, limit, cursor.start_temperature_c(), ambient, extra)
        cursor.tick_second = target
    if settle and now > cursor.time:
        cursor.move(physics, cursor.tick.power_w, ambient, now)
    return cursor


def checkpoint_of(cursor: Cursor) -> Dict[str, float]:
    """The state file's checkpoint of `cursor`: with the temperature its second started at when taken mid-second."""
    checkpoint = {"time": cursor.time, "energy_j": cursor.energy_j, "temperature_c": cursor.temperature_c}
    if cursor.time != math.floor(cursor.time):
        checkpoint["second_start_c"] = cursor.start_temperature_c()
    return checkpoint


def checkpoint_cursor(checkpoint: Dict[str, Any]) -> Cursor:
    """A cursor at a checkpoint of the state file (one written before `second_start_c` existed lacks it)."""
    start = checkpoint.get("second_start_c")
    return Cursor(
        float(checkpoint["time"]),
        float(checkpoint["energy_j"]),
        float(checkpoint["temperature_c"]),
        None if start is None else float(start),
    )
