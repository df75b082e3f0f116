"""The job ranks registered in a simulated node's state: who they are, whether they live, what load they add.

A rank (`sim.rank`, or a test's own process) registers its pid with the GPUs it runs on; while that pid lives, those
GPUs carry its load and memory. A rank can die without unregistering (SIGKILL), so liveness is always checked
against the pid, never trusted from the file. These functions read and change the state's `processes` list; the
node (`state.py`) applies the changes under its file lock. Python 3.9, like the agent that imports it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

from factoryctl.sim.readings import SimProcess

WATCH_S = 0.25  # how often a process that registered another pid checks that it still lives


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_exit(pid: int) -> None:
    """Return once process `pid` is gone (checked every `WATCH_S`)."""
    while pid_alive(pid):
        time.sleep(WATCH_S)


def live_ranks(data: Dict[str, Any], ending: Collection[int]) -> List[SimProcess]:
    """The registered ranks whose pid lives, or whose end is being banked (`ending`: alive until that checkpoint)."""
    found = []
    for p in data.get("processes", []):
        proc = SimProcess(int(p["pid"]), tuple(p["gpus"]), float(p["load"]), float(p["used_memory_mib"]), p.get("name"))
        if proc.pid in ending or pid_alive(proc.pid):
            found.append(proc)
    return found


def load_per_gpu(ranks: Sequence[SimProcess]) -> Dict[int, Tuple[float, float]]:
    """GPU index -> (load, used MiB) that `ranks` put on it: the largest load, the memory summed."""
    per_gpu: Dict[int, Tuple[float, float]] = {}
    for proc in ranks:
        for gpu in proc.gpus:
            load, mem = per_gpu.get(gpu, (0.0, 0.0))
            per_gpu[gpu] = (max(load, proc.load), mem + proc.used_memory_mib)
    return per_gpu


def drop_dead_ranks(data: Dict[str, Any], now: float) -> None:
    """Unregister job ranks whose pid has gone without unregistering (killed with SIGKILL)."""
    data["processes"] = [p for p in data.get("processes", []) if pid_alive(int(p["pid"]))]


def register(
    data: Dict[str, Any],
    now: float,
    pid: int,
    gpus: List[int],
    load: float,
    used_memory_mib: float,
    name: Optional[str],
) -> None:
    """Register rank `pid` on `gpus` (replacing an earlier registration of it), seen `now`; drop dead ones."""
    procs = [p for p in data.get("processes", []) if int(p["pid"]) != pid and pid_alive(int(p["pid"]))]
    fields = {"gpus": gpus, "load": float(load), "used_memory_mib": float(used_memory_mib), "name": name}
    data["processes"] = [*procs, {"pid": pid, **fields, "seen": now}]


def beat(data: Dict[str, Any], now: float, pid: int) -> None:
    """Note that rank `pid` was `seen` now."""
    for p in data.get("processes", []):
        if int(p["pid"]) == pid:
            p.update(seen=now)


def unregister(data: Dict[str, Any], pid: int) -> None:
    """Remove rank `pid`."""
    data["processes"] = [p for p in data.get("processes", []) if int(p["pid"]) != pid]
