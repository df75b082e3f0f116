"""What a simulated node's state file holds, and how it is made to match the configuration a process asks for.

The file keeps what a real board keeps across calls (power limits, faults, ECC counters, events, registered job
ranks) and a per-GPU checkpoint of the energy counter and temperature. A process that opens a node passes the
configuration it wants (the nvidia-smi shim passes none and keeps what is there): a different profile or GPU count
re-creates the node's hardware, while seed, workload, unsupported fields and whether setters need root are changed
in place. Kept apart from the node itself (`state.py`), which reads, locks and writes the file. Python 3.9, like
the agent that imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from factoryctl.sim.profiles import DeviceProfile, get_profile

STATE_VERSION = 1
WORKLOADS = ("synthetic", "idle")
DEFAULT_PROFILE = "h100-sxm"
DEFAULT_GPUS = 8
#: The configuration a process asks for when it keeps whatever the file says.
KEEP: Dict[str, Any] = {
    "profile": None, "gpus": None, "seed": None, "workload": None, "unsupported": None, "setters_need_root": None,
}  # fmt: skip


def new_gpu(now: float, profile: DeviceProfile) -> Dict[str, Any]:
    """A GPU fresh from boot: default limit, no faults, the energy counter at 0, idle at its steady temperature."""
    resistance = (profile.full_load_c - profile.ambient_c) / profile.peak_w
    temperature = profile.ambient_c + resistance * profile.idle_w
    checkpoint = {"time": now, "energy_j": 0.0, "temperature_c": round(temperature, 3)}
    faults = {"lost": False, "ecc_volatile": 0, "ecc_aggregate": 0, "ambient_offset_c": 0.0}
    return {"limit_w": None, **faults, "checkpoint": checkpoint}


def reconcile(
    data: Dict[str, Any], wanted: Dict[str, Any], factory: str, node: str, clock: Callable[[], float]
) -> Tuple[Dict[str, Any], bool]:
    """`data` made to match the `wanted` configuration (None = keep), and whether it changed and must be written.

    `clock` is read only when the hardware is (re-)created: its time is the node's boot and every checkpoint's.
    """
    changed = False
    hardware = data.get("profile"), len(data.get("gpus") or [])
    profile = wanted["profile"] or data.get("profile") or DEFAULT_PROFILE
    count = wanted["gpus"] if wanted["gpus"] is not None else len(data.get("gpus") or []) if data else DEFAULT_GPUS
    if not data or hardware != (profile, count):
        now = clock()
        prof = get_profile(profile)
        identity = {"version": STATE_VERSION, "factory": factory, "node": node, "profile": profile}
        settings = {"seed": 0, "workload": "synthetic", "unsupported": [], "revision": 0, "created": now}
        hardware_state = {"boot_time": now, "gpus": [new_gpu(now, prof) for _ in range(count)]}
        data = {**identity, **settings, **hardware_state, "events": [], "next_seq": 1, "processes": []}
        changed = True
    for key in ("seed", "workload", "setters_need_root"):
        if wanted[key] is not None and data.get(key) != wanted[key]:
            data[key], changed = wanted[key], True
    if wanted["unsupported"] is not None and data.get("unsupported") != list(wanted["unsupported"]):
        data["unsupported"], changed = list(wanted["unsupported"]), True
    return data, changed
