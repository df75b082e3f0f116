"""Checks of a simulated node's state file as it is read: it can be edited by hand, so it is not trusted.

A real driver never reports a power limit outside the GPU's range, so neither may the simulated one: such a limit
(or one that is not a number) is reset to the default. A file that cannot be used at all is moved aside
(`<name>.json.bad`) rather than silently overwritten, which would lose its faults and energy counter unannounced;
a file is unusable when any field the node reads is of the wrong type or out of range (an ECC count that is not a
count, a negative energy counter), so no later read of it can fail or report what no driver would.
Each repair is a warning on stderr naming the file. Python 3.9, like the agent that imports it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

from factoryctl.sim.profiles import DeviceProfile, get_profile
from factoryctl.sim.state_layout import WORKLOADS


def warn(message: str) -> None:
    """One warning line on stderr, prefixed as the simulated driver's."""
    print(f"factoryctl-sim: warning: {message}", file=sys.stderr, flush=True)


def finite(value: object) -> bool:
    """A finite int or float (a boolean is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def in_range(limit: object, profile: DeviceProfile) -> bool:
    """Whether a stored limit is one the driver could enforce: a finite number within min..max."""
    return (
        finite(limit) and isinstance(limit, (int, float)) and bool(profile.power_min_w <= limit <= profile.power_max_w)
    )


def count(value: object) -> bool:
    """A non-negative int (a boolean is not a count)."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def between(low: float, high: float) -> Callable[[object], bool]:
    """A check of a finite number within low..high."""

    def check(value: object) -> bool:
        return finite(value) and isinstance(value, (int, float)) and low <= value <= high

    return check


def _is(kind: type) -> Callable[[object], bool]:
    return lambda value: isinstance(value, kind)


TEMPERATURE_C = between(-100.0, 300.0)
#: What each stored field must be, where present (a missing one has its default), so no read of it can fail.
NODE_FIELDS: Dict[str, Callable[[object], bool]] = {
    "seed": lambda v: not isinstance(v, bool) and isinstance(v, int),
    "workload": lambda v: v in WORKLOADS,
    "unsupported": lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v),
    "setters_need_root": _is(bool),
    "revision": count,
    "next_seq": count,
    "boot_time": finite,
    "created": finite,
}
GPU_FIELDS: Dict[str, Callable[[object], bool]] = {
    "lost": _is(bool),
    "ecc_volatile": count,
    "ecc_aggregate": count,
    "ambient_offset_c": between(-100.0, 100.0),
}
CHECKPOINT_FIELDS: Dict[str, Callable[[object], bool]] = {
    "time": between(0.0, math.inf),
    "energy_j": between(0.0, math.inf),  # NVML's counter is unsigned
    "temperature_c": TEMPERATURE_C,
    "second_start_c": TEMPERATURE_C,
}
EVENT_FIELDS: Dict[str, Callable[[object], bool]] = {
    "seq": count, "gpu": count, "type": lambda v: v in ("xid", "ecc"), "data": count, "time": finite,
}  # fmt: skip
PROCESS_FIELDS: Dict[str, Callable[[object], bool]] = {
    "pid": lambda v: count(v) and v != 0,  # pid 0 would be this process group, always alive
    "gpus": lambda v: isinstance(v, list) and all(count(g) for g in v),
    "load": between(0.0, math.inf),
    "used_memory_mib": between(0.0, math.inf),
    "name": lambda v: v is None or isinstance(v, str),
    "seen": finite,
}
REQUIRED = {
    "checkpoint": ("time", "energy_j", "temperature_c"),
    "event": tuple(EVENT_FIELDS),
    "process": ("pid", "gpus", "load", "used_memory_mib"),
}


def fields_ok(item: object, checks: Dict[str, Callable[[object], bool]], required: Tuple[str, ...] = ()) -> bool:
    """Whether `item` is a dict with every `required` field and every field it has of `checks` right."""
    if not isinstance(item, dict) or not all(k in item for k in required):
        return False
    return all(check(item[k]) for k, check in checks.items() if k in item)


def well_formed(data: Dict[str, Any]) -> bool:
    """Whether loaded state has every field the node reads of the right type and range.

    A known profile, GPUs with checkpoints, events and ranks: every later read of the file relies on it (one that
    raised on a hand-edited `"ecc_volatile": "x"` made the driver's calls raise ValueError, not NVMLError).
    """
    try:
        get_profile(str(data.get("profile")))
    except ValueError:
        return False
    gpus = data.get("gpus")
    if not fields_ok(data, NODE_FIELDS) or not isinstance(gpus, list):
        return False
    if not all(fields_ok(g, GPU_FIELDS) and fields_ok(g.get("checkpoint"), CHECKPOINT_FIELDS, REQUIRED["checkpoint"])
               for g in gpus):  # fmt: skip
        return False
    events, processes = data.get("events", []), data.get("processes", [])
    return (
        isinstance(events, list)
        and isinstance(processes, list)
        and all(fields_ok(e, EVENT_FIELDS, REQUIRED["event"]) for e in events)
        and all(fields_ok(p, PROCESS_FIELDS, REQUIRED["process"]) for p in processes)
    )


def set_aside(path: Path) -> None:
    """Move an unusable state file to `<name>.bad` (under the node's lock), saying so."""
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    warn(
        f"{path} is not a usable simulated-node state file (not JSON, of another version, or a field missing, of the wrong type or out of range); "
        f"moved it to {bad} and started the node afresh (limits, faults and energy counter reset)."
    )


def reset_bad_limits(path: Path, data: Dict[str, Any]) -> bool:
    """Reset to the default every stored limit outside the profile's range or not a number; True if one was."""
    profile = get_profile(data["profile"])
    reset = False
    for index, gpu in enumerate(data["gpus"]):
        limit = gpu.get("limit_w")
        if limit is None or in_range(limit, profile):
            continue
        gpu["limit_w"], reset = None, True
        warn(
            f"{path}: GPU {index}'s power limit {limit!r} W is outside its range {profile.power_min_w:g}-"
            f"{profile.power_max_w:g} W (or not a number); reset to the default {profile.power_default_w:g} W."
        )
    return reset


def has_bad_limit(data: Dict[str, Any]) -> bool:
    """Whether a stored limit would need `reset_bad_limits` (checked on every reload by a long-lived reader)."""
    profile = get_profile(data["profile"])
    return any(g.get("limit_w") is not None and not in_range(g["limit_w"], profile) for g in data["gpus"])
