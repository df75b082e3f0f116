"""Failure injection for simulated GPUs: what each fault does to a node's persisted state.

Faults come from `factoryctl sim inject` (through the agent's `inject` operation) or straight from `SimNode.inject`;
both end here, applied under the node's file lock. See docs/simulated-driver.md for what an operator sees.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from factoryctl.sim.nvml_constants import UNSUPPORTABLE_FIELDS

FAULTS = ("xid", "ecc", "lost", "hot", "reset", "reboot")
XID_FALLEN_OFF_BUS = 79  # "GPU has fallen off the bus": the GPU is lost as well
COOLING_FAILURE_C = 45.0  # ambient rise of the `hot` fault: enough to reach thermal slowdown under load
MAX_EVENTS = 200
#: The largest XID an event can carry: NVML's `nvmlEventData_t.eventData` is an unsigned long long.
MAX_XID = 2**64 - 1


def check_fault(fault: str, xid: Optional[int]) -> None:
    """ValueError (one sentence) for an unknown fault or an XID fault without a code."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    if fault == "xid" and (xid is None or not 0 < int(xid) <= MAX_XID):
        raise ValueError(f"an xid fault needs a positive XID code up to {MAX_XID} (an unsigned 64-bit event), e.g. 79")


def check_reportable(fault: str, unsupported: Sequence[str]) -> None:
    """ValueError (a sentence and a hint) for an `ecc` fault on a board that withholds ECC: nothing would report it.

    Its counters answer NOT_SUPPORTED and it delivers no ECC events (NVML: only on ECC-enabled devices), so the
    injection would be reported a success that no reader could ever see.
    """
    counter = "nvmlDeviceGetTotalEccErrors"
    if fault == "ecc" and any(name == counter or counter in UNSUPPORTABLE_FIELDS.get(name, ()) for name in unsupported):
        raise ValueError(
            "this node's simulated GPUs have no ECC reporting (its sim config lists ecc_uncorrected as unsupported), "
            "so an ECC error would never be seen; nothing was injected. Remove ecc_uncorrected from the node's "
            "`sim: unsupported:` in factory.yaml to inject ECC errors there."
        )


def add_event(data: Dict[str, Any], gpu: int, kind: str, value: int, now: float) -> None:
    """Append an event (`xid` or `ecc`) for NVML event sets to deliver; keeps the newest MAX_EVENTS."""
    seq = int(data.get("next_seq", 1))
    data["next_seq"] = seq + 1
    events = list(data.get("events", []))
    events.append({"seq": seq, "gpu": gpu, "type": kind, "data": value, "time": now})
    data["events"] = events[-MAX_EVENTS:]


def apply_fault(
    data: Dict[str, Any], fault: str, gpus: List[int], xid: Optional[int], now: float, cold_c: float
) -> Dict[str, Any]:
    """Change `data` as `fault` on `gpus` would; returns `{"fault", "gpus", "xid"?}` for the reply.

    `reset` is a driver reload: limits back to default, lost GPUs back, volatile ECC counts and cooling faults
    cleared, and the energy counter restarted (NVML counts energy "since the driver was last reloaded"). `reboot`
    is a reset that also cools the GPUs to `cold_c`. A lost GPU answers nothing until one of them, so the energy
    it was taken to draw while lost is never reported.
    """
    for i in gpus:
        gpu = data["gpus"][i]
        if fault == "xid":
            add_event(data, i, "xid", int(xid or 0), now)
            if int(xid or 0) == XID_FALLEN_OFF_BUS:
                gpu["lost"] = True
        elif fault == "ecc":
            gpu["ecc_volatile"] = int(gpu.get("ecc_volatile", 0)) + 1
            gpu["ecc_aggregate"] = int(gpu.get("ecc_aggregate", 0)) + 1
            add_event(data, i, "ecc", 1, now)
        elif fault == "lost":
            gpu["lost"] = True
        elif fault == "hot":
            gpu["ambient_offset_c"] = COOLING_FAILURE_C
        else:
            gpu.update(limit_w=None, lost=False, ecc_volatile=0, ambient_offset_c=0.0)
            gpu["checkpoint"]["energy_j"] = 0.0
            if fault == "reboot":
                gpu["checkpoint"]["temperature_c"] = cold_c
    if fault == "reboot":
        data["boot_time"] = now
    result: Dict[str, Any] = {"fault": fault, "gpus": list(gpus)}
    if fault == "xid":
        result["xid"] = int(xid or 0)
    return result
