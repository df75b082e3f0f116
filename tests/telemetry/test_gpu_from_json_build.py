"""`GpuSample.from_json` builds its instance without the frozen `__init__` (the reader's hot path): same result.

It sets the checked wire values as the instance's attributes directly, so these tests hold what that relies on: the
built sample equals, attribute for attribute and in the same order, what the constructor makes; every field is read
from the wire (a new field needs its check in `from_json`); and GpuSample has no `__post_init__` the build would skip.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from factoryctl.model.telemetry import INVALID, GpuProcess, GpuSample, XidEvent

#: A valid wire value for each field type, and the value the model holds for it.
WIRE_VALUES: dict[str, tuple[Any, Any]] = {
    "str | None": ("GPU-\x1b[2J", "GPU-\\x1b[2J"),
    "int | None": (3, 3),
    "float | None": (2.5, 2.5),
    "tuple[str, ...]": (["SwPowerCap"], ("SwPowerCap",)),
    "tuple[GpuProcess, ...]": (
        [{"pid": 7, "used_memory_mib": 10.0, "name": "python"}],
        (GpuProcess(7, 10.0, "python"),),
    ),
    "tuple[XidEvent, ...]": ([{"xid": 43, "time": 1_700_000_000.0}], (XidEvent(43, 1_700_000_000.0),)),
}


def wire_fields() -> list[str]:
    return [f.name for f in fields(GpuSample) if f.name not in ("node", "index", "null_reasons")]


def test_every_field_is_read_from_the_wire() -> None:
    types = {f.name: str(f.type) for f in fields(GpuSample)}
    for name in wire_fields():
        assert types[name] in WIRE_VALUES, f"{name}: a new field type needs its check in GpuSample.from_json"
        wire, held = WIRE_VALUES[types[name]]
        gpu = GpuSample.from_json("n1", {"index": 0, name: wire})
        assert getattr(gpu, name) == held, name
        assert gpu.null_reasons == {}, name


def test_a_full_wire_gpu_builds_what_the_constructor_builds() -> None:
    types = {f.name: str(f.type) for f in fields(GpuSample)}
    wire: dict[str, Any] = {"index": 2, "null_reasons": {"ecc_uncorrected": "not_supported"}, "future_key": 1}
    wire |= {name: WIRE_VALUES[types[name]][0] for name in wire_fields()}
    wire["power_w"] = float("nan")
    held = {name: WIRE_VALUES[types[name]][1] for name in wire_fields()} | {"power_w": None}
    reasons = {"ecc_uncorrected": "not_supported", "power_w": INVALID}
    built = GpuSample.from_json("n1", wire)
    constructed = GpuSample("n1", 2, null_reasons=reasons, **held)
    assert built == constructed
    assert list(vars(built).items()) == list(vars(constructed).items())


def test_a_bare_wire_gpu_has_every_default() -> None:
    built = GpuSample.from_json("n1", {"index": 0})
    assert list(vars(built).items()) == list(vars(GpuSample("n1", 0)).items())


def test_gpu_sample_has_no_post_init_for_the_build_to_skip() -> None:
    assert not hasattr(GpuSample, "__post_init__"), "GpuSample.from_json does not run __post_init__: call it there"
