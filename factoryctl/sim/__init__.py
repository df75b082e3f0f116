"""factoryctl.sim: a simulated NVML driver, so the whole stack runs and is tested on machines without a GPU.

`factoryctl.sim.nvml` is a drop-in for the subset of `pynvml` the agent uses (same names, units and errors), and its
names are reachable from this package too (`factoryctl.sim.nvmlDeviceGetPowerUsage`), loaded on first use;
`state.SimNode` is the persisted node behind it (profiles, physics, faults); `smi` is an nvidia-smi shim and `rank`
a simulated job rank over the same state. Everything here is stdlib only and Python >= 3.9, because it ships inside
the agent zipapp.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:  # noqa: ANN401 - PEP 562 lazy re-export of every pynvml-style name (functions, constants, classes)
    """PEP 562: pynvml-style names (`nvml*`, `NVML*`, `NVMLError*`) come from `factoryctl.sim.nvml` lazily."""
    if name.startswith(("nvml", "NVML")) and name != "nvml":
        return getattr(importlib.import_module("factoryctl.sim.nvml"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
