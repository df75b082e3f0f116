"""Checks of a simulated node's state file as it is read: it can be edited by hand, so it is not trusted.

A real driver never reports a power limit outside the GPU's range, so neither may the simulated one: such a limit
(or one that is not a number) is reset to the default. A file that cannot be used at all is moved aside
(`<name>.json.bad`) rather than silently overwritten, which would lose its faults and energy counter unannounced.
Each repair is a warning on stderr naming the file. Python 3.9, like the agent that imports it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Dict

from factoryctl.sim.profiles import DeviceProfile, get_profile


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


def well_formed(data: Dict[str, Any]) -> bool:
    """Whether loaded state has what the node reads unchecked: a known profile, GPUs with numeric checkpoints."""
    try:
        get_profile(str(data.get("profile")))
    except ValueError:
        return False
    gpus = data.get("gpus")
    if not isinstance(gpus, list) or not all(isinstance(g, dict) for g in gpus):
        return False
    marks = [g.get("checkpoint") for g in gpus]
    if not all(
        isinstance(m, dict) and all(finite(m.get(k)) for k in ("time", "energy_j", "temperature_c")) for m in marks
    ):
        return False
    return all(isinstance(data.get(k, []), list) for k in ("events", "processes"))


def set_aside(path: Path) -> None:
    """Move an unusable state file to `<name>.bad` (under the node's lock), saying so."""
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    warn(
        f"{path} is not a usable simulated-node state file (not JSON, of another version, or missing fields); "
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
