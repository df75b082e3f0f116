"""What a simulated node reports: one GPU's reading at one instant, and the job ranks registered on its GPUs.

Kept apart from the node's state file (`state.py`) because these are the values every consumer sees: the simulated
NVML module, the nvidia-smi shim and the tests read `GpuReading`s and never the file. A reading is assembled here
from the profile, the GPU's stored faults and the current second's tick, so `SimNode.reading` only has to bring
those together. Python 3.9, like the agent that imports it.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from factoryctl.sim.physics import Tick
from factoryctl.sim.profiles import DeviceProfile

IDLE_MEM_CLOCK_MHZ = 405  # the memory clock an idle board drops to


@functools.lru_cache(maxsize=4096)
def gpu_uuid(factory: str, node: str, index: int) -> str:
    """A real-looking, deterministic GPU UUID, unique per factory, node and GPU."""
    digest = uuid.uuid5(uuid.NAMESPACE_DNS, f"factoryctl-sim/{factory}/{node}/{index}").bytes
    return "GPU-" + str(uuid.UUID(bytes=digest, version=4))


@dataclass(frozen=True)
class SimProcess:
    """A job rank registered on simulated GPUs: while its pid lives, those GPUs carry its load."""

    pid: int
    gpus: Tuple[int, ...]
    load: float = 1.0
    used_memory_mib: float = 0.0
    name: Optional[str] = None


@dataclass(frozen=True)
class GpuReading:
    """Everything NVML would report about one simulated GPU at one instant."""

    index: int
    uuid: str
    name: str
    lost: bool
    utilization_pct: int
    memory_used_mib: float
    memory_total_mib: int
    power_w: float
    limit_w: float
    limit_min_w: float
    limit_max_w: float
    limit_default_w: float
    energy_j: float
    temperature_c: float
    slowdown_c: int
    shutdown_c: int
    sm_clock_mhz: int
    sm_clock_max_mhz: int
    mem_clock_mhz: int
    reasons: int
    throughput: float
    ecc_volatile: int
    ecc_aggregate: int
    processes: Tuple[SimProcess, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ReadingInputs:
    """One GPU's inputs to a reading: its stored faults, its limit, this second's tick and its integrated state."""

    index: int
    uuid: str
    stored: Dict[str, Any]  # the GPU's entry in the state file (faults, ECC counters)
    limit_w: float
    tick: Tick
    energy_j: float
    temperature_c: float
    rank_memory_mib: float  # memory the registered job ranks use on it
    processes: Tuple[SimProcess, ...]


def gpu_reading(gpu: ReadingInputs, p: DeviceProfile) -> GpuReading:
    """The reading NVML would give of `gpu` on a board of profile `p`."""
    tick = gpu.tick
    memory = min(float(p.memory_total_mib), 1.0 + tick.memory_fraction * p.memory_total_mib + gpu.rank_memory_mib)
    return GpuReading(
        index=gpu.index,
        uuid=gpu.uuid,
        name=p.name,
        lost=bool(gpu.stored.get("lost")),
        utilization_pct=round(tick.load * 100),
        memory_used_mib=round(memory, 1),
        memory_total_mib=p.memory_total_mib,
        power_w=tick.power_w,
        limit_w=gpu.limit_w,
        limit_min_w=p.power_min_w,
        limit_max_w=p.power_max_w,
        limit_default_w=p.power_default_w,
        energy_j=gpu.energy_j,
        temperature_c=gpu.temperature_c,
        slowdown_c=p.slowdown_c,
        shutdown_c=p.shutdown_c,
        sm_clock_mhz=tick.sm_clock_mhz,
        sm_clock_max_mhz=p.sm_clock_max_mhz,
        mem_clock_mhz=p.mem_clock_mhz if tick.load > 0 else IDLE_MEM_CLOCK_MHZ,
        reasons=tick.reasons,
        throughput=tick.throughput,
        ecc_volatile=int(gpu.stored.get("ecc_volatile", 0)),
        ecc_aggregate=int(gpu.stored.get("ecc_aggregate", 0)),
        processes=gpu.processes,
    )
