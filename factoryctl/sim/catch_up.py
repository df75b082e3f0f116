"""Bringing one simulated GPU's energy counter and temperature from its last checkpoint up to now.

The state file keeps, per GPU, only a checkpoint (time, energy, temperature); everything since is recomputed from
`physics.py` one whole second at a time, so two processes that advance the same checkpoint agree exactly. A GPU
nobody read for longer than `EXACT_CATCH_UP_S` is first caught up phase by phase at each workload phase's mean
power (within about 0.1 % of the per-second sum), so a read after a day takes milliseconds, not a day's seconds.
Pure arithmetic on a cursor, apart from the node's file and locks (`state.py`). Python 3.9, like the agent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from factoryctl.sim.physics import GpuPhysics, Tick

EXACT_CATCH_UP_S = 600  # beyond this gap, catch up phase by phase at each phase's mean power (physics.py)


@dataclass
class Cursor:
    """Where one GPU's integration stands: the state at `time`, and the current second's tick once computed."""

    time: float  # unix time at which the state below holds
    energy_j: float
    temperature_c: float
    tick: Optional[Tick] = None  # the current second's tick, once computed
    tick_second: int = -1


@dataclass(frozen=True)
class Conditions:
    """What a GPU runs under while it is caught up: none of it changes between two commits of the state."""

    limit_w: float  # the enforced power limit
    ambient_c: float  # the profile's ambient plus the GPU's injected offset
    extra_load: float  # the load of registered job ranks on it


def advance(cursor: Cursor, physics: GpuPhysics, now: float, under: Conditions, settle: bool = False) -> Cursor:
    """Integrate `cursor` up to the start of the current second (to `now` itself when `settle`), in place."""
    target = math.floor(now)
    ambient, extra, limit = under.ambient_c, under.extra_load, under.limit_w
    while target - cursor.time > EXACT_CATCH_UP_S:
        second = math.floor(cursor.time)
        end = min(physics.phase_end(second), target - EXACT_CATCH_UP_S // 2)
        power = physics.mean_power_w(second, limit, cursor.temperature_c, ambient, extra)
        cursor.energy_j += power * (end - cursor.time)
        cursor.temperature_c = physics.next_temperature(cursor.temperature_c, power, ambient, end - cursor.time)
        cursor.time = float(end)
    while cursor.time < target:
        second = math.floor(cursor.time)
        span = second + 1 - cursor.time
        tick = physics.step(second, limit, cursor.temperature_c, ambient, extra)
        cursor.energy_j += tick.power_w * span
        cursor.temperature_c = physics.next_temperature(cursor.temperature_c, tick.power_w, ambient, span)
        cursor.time = float(second + 1)
        cursor.tick = None
    if cursor.tick_second != target or cursor.tick is None:
        cursor.tick = physics.step(target, limit, cursor.temperature_c, ambient, extra)
        cursor.tick_second = target
    if settle and now > cursor.time:
        span = now - cursor.time
        cursor.energy_j += cursor.tick.power_w * span
        cursor.temperature_c = physics.next_temperature(cursor.temperature_c, cursor.tick.power_w, ambient, span)
        cursor.time = now
    return cursor
