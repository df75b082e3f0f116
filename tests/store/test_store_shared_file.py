"""Two processes writing one store: each `Store` here is its own SQLite connection to one real file, as the root
controller and an operator's one-shot `telemetry collect --once` would be.

What a connection caches (throttle-reason bits, node ids, GPU facts) must never outlive what the file says: a reason
bit another process took, or a row of a write that was rolled back, would make one node or reason read as another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0


def sample(node: str, t: float, *reasons: str, power: object = 300.0) -> NodeSample:
    gpu = GpuSample(node, 0, uuid=f"GPU-{node}", power_w=power, throttle_reasons=reasons)  # type: ignore[arg-type]
    return NodeSample(node, t, gpus=(gpu,))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "factory.db"


@pytest.fixture
def stores(path: Path) -> Iterator[tuple[Store, Store]]:
    first, second = Store(path), Store(path)  # both opened (and their caches loaded) before either writes
    yield first, second
    first.close()
    second.close()


def reasons_of(path: Path, node: str) -> list[list[str]]:
    reader = Store(path, readonly=True)  # a third process: only the file speaks
    try:
        return [row["throttle_reasons"] for row in reader.export([node], T0 - 1, T0 + 10)]
    finally:
        reader.close()


def test_a_new_reason_does_not_take_a_bit_another_process_took(path: Path, stores: tuple[Store, Store]) -> None:
    controller, operator = stores
    operator.write([sample("b", T0, "SwPowerCap")])
    controller.write([sample("a", T0, "HwSlowdown")])
    controller.write([sample("a", T0 + 1, "HwSlowdown", "SwPowerCap")])
    assert reasons_of(path, "a") == [["HwSlowdown"], ["SwPowerCap", "HwSlowdown"]]  # in bit order: b's came first
    assert reasons_of(path, "b") == [["SwPowerCap"]]


def test_a_rolled_back_write_leaves_no_cached_bit_or_node_id(path: Path, stores: tuple[Store, Store]) -> None:
    controller, operator = stores
    with pytest.raises(TypeError):  # fails after its reason bit and node id were chosen: the write rolls back
        controller.write([sample("a", T0, "HwSlowdown", power="x")])
    operator.write([sample("b", T0, "SwPowerCap")])  # free to take the same bit and node id: the table has neither
    controller.write([sample("a", T0 + 1, "HwSlowdown")])
    assert reasons_of(path, "a") == [["HwSlowdown"]]
    assert reasons_of(path, "b") == [["SwPowerCap"]]
    assert sorted((s.node, smp.gpus[0].uuid if smp else None) for s, smp in controller.latest()) == [
        ("a", "GPU-a"),
        ("b", "GPU-b"),
    ]


def test_a_rolled_back_write_leaves_no_cached_gpu_facts(path: Path, stores: tuple[Store, Store]) -> None:
    controller, _ = stores
    unencodable = GpuSample("a", 1, power_w="x")  # type: ignore[arg-type]
    bad = NodeSample("a", T0, gpus=(GpuSample("a", 0, uuid="GPU-a0"), unencodable))
    with pytest.raises(TypeError):
        controller.write([bad])
    controller.write([NodeSample("a", T0 + 1, gpus=(GpuSample("a", 0, uuid="GPU-a0"),))])
    assert controller.rollup(now=T0 + 600) == 1  # rollups walk the `gpu` table: GPU 0 must be in it
