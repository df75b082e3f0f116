"""Host metrics for the node sample: psutil when the node has it, /proc otherwise (the agent ships without deps)."""

from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Any, Dict, Optional, Tuple


def _load_psutil() -> Optional[ModuleType]:
    """The psutil module when the node's Python has it, else None (then /proc is read directly)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil


_psutil: Any = _load_psutil()


class HostSampler:
    """Samples `cpu_pct` (since the previous sample), memory and load average."""

    def __init__(self) -> None:
        self._last_cpu: Optional[Tuple[float, float]] = None
        if _psutil is not None:
            _psutil.cpu_percent(interval=None)  # prime the counter
        else:
            self._last_cpu = _proc_cpu_times()

    def sample(self) -> Dict[str, Any]:
        """`{"cpu_pct", "memory_used_mib", "memory_total_mib", "load_1m"}`; a value that cannot be read is null."""
        out: Dict[str, Any] = {"cpu_pct": None, "memory_used_mib": None, "memory_total_mib": None, "load_1m": None}
        with contextlib.suppress(OSError):
            out["load_1m"] = round(os.getloadavg()[0], 2)
        if _psutil is not None:
            out["cpu_pct"] = float(_psutil.cpu_percent(interval=None))
            vm = _psutil.virtual_memory()
            out["memory_total_mib"] = round(vm.total / 2**20, 1)
            out["memory_used_mib"] = round((vm.total - vm.available) / 2**20, 1)
            return out
        now = _proc_cpu_times()
        if now is not None and self._last_cpu is not None:
            busy, total = now[0] - self._last_cpu[0], now[1] - self._last_cpu[1]
            out["cpu_pct"] = round(100.0 * busy / total, 1) if total > 0 else 0.0
        self._last_cpu = now
        mem = _proc_meminfo()
        if "MemTotal" in mem:
            out["memory_total_mib"] = round(mem["MemTotal"] / 1024, 1)
            available = mem.get("MemAvailable", mem.get("MemFree", 0))
            out["memory_used_mib"] = round((mem["MemTotal"] - available) / 1024, 1)
        return out


def _proc_cpu_times() -> Optional[Tuple[float, float]]:
    """(busy, total) jiffies from /proc/stat's first line."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def _proc_meminfo() -> Dict[str, float]:
    """/proc/meminfo in KiB."""
    out: Dict[str, float] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = float(parts[0])
    except (OSError, ValueError):
        pass
    return out
