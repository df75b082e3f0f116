"""One bad value from one agent must not stop the controller storing everybody's samples.

The wire form is checked as it comes in (`GpuSample.from_json`: a value that is not a finite number is null with the
reason `invalid`), and the store writer drops, on its own, a sample that still cannot be encoded.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.telemetry import INVALID, GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.writer import StoreWriter

T0 = 1_700_000_040.0


def wire_gpu(**values: Any) -> dict[str, Any]:
    return {"index": 0, "uuid": "GPU-0", "name": "H100", "power_w": 300.0, "null_reasons": {}, **values}


@pytest.mark.parametrize("bad", ["x", "300", True, False, math.nan, math.inf, -math.inf, [1], {"w": 1}])
def test_a_value_that_is_not_a_finite_number_is_null_with_a_reason(bad: object) -> None:
    gpu = GpuSample.from_json("n1", wire_gpu(power_w=bad, temperature_c=bad, ecc_uncorrected=bad))
    assert gpu.power_w is None
    assert gpu.temperature_c is None
    assert gpu.ecc_uncorrected is None
    assert gpu.null_reasons == {"power_w": INVALID, "temperature_c": INVALID, "ecc_uncorrected": INVALID}


def test_numbers_and_the_agents_own_reasons_pass_unchanged() -> None:
    gpu = GpuSample.from_json(
        "n1",
        wire_gpu(
            power_w=312.5,
            sm_clock_mhz=1980,
            ecc_uncorrected=0,
            temperature_c=None,
            null_reasons={"temperature_c": "not_supported"},
        ),
    )
    assert (gpu.power_w, gpu.sm_clock_mhz, gpu.ecc_uncorrected) == (312.5, 1980, 0)
    assert gpu.null_reasons == {"temperature_c": "not_supported"}


def test_strings_lists_and_records_of_the_wrong_type_are_left_out() -> None:
    gpu = GpuSample.from_json(
        "n1",
        wire_gpu(
            uuid=7,
            throttle_reasons=["SwPowerCap", 3],
            processes=[{"pid": 42, "used_memory_mib": "lots"}, {"pid": "x"}, 5],
            xid_events=[{"xid": 79, "time": "now"}, {"xid": None}],
            null_reasons={"name": 1},
        ),
    )
    assert gpu.uuid is None
    assert gpu.throttle_reasons == ("SwPowerCap",)
    assert [(p.pid, p.used_memory_mib) for p in gpu.processes] == [(42, None)]
    assert [(x.xid, x.time) for x in gpu.xid_events] == [(79, None)]
    assert gpu.null_reasons == {"uuid": INVALID}  # the stray 3 is dropped; the valid name stays, and shows
    assert gpu.as_json()["throttle_reasons"] == ["SwPowerCap"]
    only_junk = GpuSample.from_json("n1", wire_gpu(throttle_reasons=[3]))
    assert only_junk.null_reasons == {"throttle_reasons": INVALID}
    assert only_junk.as_json()["throttle_reasons"] is None


@pytest.mark.parametrize("entry", [1, "gpu", None, {"power_w": 3.0}, {"index": "0"}, {"index": True}])
def test_an_entry_that_names_no_gpu_is_refused(entry: Any) -> None:
    with pytest.raises(ValueError, match="GPU entry"):
        GpuSample.from_json("n1", entry)


def writer_for(tmp_path: Path, clock: list[float]) -> tuple[Store, StoreWriter]:
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["a", "b"])
    return store, writer


def test_a_bad_wire_value_is_stored_as_null_with_every_other_node(tmp_path: Path) -> None:
    clock = [T0 + 1]
    store, writer = writer_for(tmp_path, clock)
    writer.offer(NodeSample("a", T0, gpus=(GpuSample.from_json("a", wire_gpu(power_w="x")),)))
    writer.offer(NodeSample("b", T0, gpus=(GpuSample.from_json("b", wire_gpu()),)))
    assert writer.flush() == 2
    rows = {r["node"]: r for r in store.export(["a", "b"], T0 - 1, T0 + 1)}
    assert (rows["a"]["power_w"], rows["b"]["power_w"]) == (None, 300.0)
    latest = {state.node: sample for state, sample in store.latest()}
    assert latest["a"] is not None
    assert latest["a"].gpus[0].null_reasons == {"power_w": INVALID}
    store.close()


def test_a_sample_that_cannot_be_encoded_is_dropped_and_the_others_are_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [T0 + 1]
    store, writer = writer_for(tmp_path, clock)
    for node in ("a", "b"):  # built in-process, past from_json: what a bug of ours would hand the writer
        writer.offer(NodeSample(node, T0, gpus=(GpuSample(node, 0, power_w=100.0),)))
    writer.offer(NodeSample("a", T0 + 0.5, gpus=(GpuSample("a", 0, power_w="x"),)))  # type: ignore[arg-type]
    writer.offer(NodeSample("b", T0 + 0.5, gpus=(GpuSample("b", 0, power_w=math.nan),)))
    writer.offer(NodeSample("b", T0 + 0.7, gpus=(GpuSample("b", 0, uuid={"not": "text"}),)))  # type: ignore[arg-type]
    writer.offer(NodeSample("b", T0 + 0.8, gpus=(GpuSample("b", 0, energy_j=1e300),)))  # past SQLite's integers
    with caplog.at_level(logging.WARNING, logger="factoryctl.telemetry"):
        assert writer.flush() == 2
    stats = writer.stats()
    assert (stats["samples"], stats["dropped"], stats["pending"], stats["store_error"]) == (2, 4, 0, None)
    assert [r["power_w"] for r in store.export(["a", "b"], T0 - 1, T0 + 1)] == [100.0, 100.0]
    dropped = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert len(dropped) == 1  # at most one line a minute, however many samples a broken agent sends
    assert dropped[0].startswith("a: a sample cannot be stored (GPU 0: ")  # the first, named by its GPU
    clock[0] += 1
    writer.offer(NodeSample("a", T0 + 1, gpus=(GpuSample("a", 0, power_w=101.0),)))
    assert writer.flush() == 1  # nothing held back: the next tick stores the next sample
    store.close()


def test_a_bad_value_in_the_health_checks_drops_only_its_sample(tmp_path: Path) -> None:
    clock = [T0 + 2]
    store, writer = writer_for(tmp_path, clock)
    writer.offer(NodeSample("a", T0, gpus=(GpuSample("a", 0, ecc_uncorrected=0),)))
    writer.offer(NodeSample("a", T0 + 1, gpus=(GpuSample("a", 0, ecc_uncorrected="x"),)))  # type: ignore[arg-type]
    writer.offer(NodeSample("b", T0 + 1, gpus=(GpuSample("b", 0, power_w=5.0),)))
    assert writer.flush() == 2
    assert writer.stats()["dropped"] == 1
    store.close()


def test_the_stored_latest_sample_reads_back_through_the_same_checks(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    gpu = GpuSample("n1", 0, power_w=5.0, throttle_reasons=("SwPowerCap",), null_reasons={"uuid": "gpu_lost"})
    store.write([NodeSample("n1", T0, gpus=(gpu,))])
    (_, sample), *_ = store.latest()
    assert sample is not None
    assert sample.gpus[0] == gpu
    assert json.loads(json.dumps(sample.gpus[0].as_json()))["null_reasons"] == {"uuid": "gpu_lost"}
    store.close()
