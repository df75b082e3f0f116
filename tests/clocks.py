"""Clocks the tests move by hand (a wall clock and a monotonic one), and a store writer running on them."""

from __future__ import annotations

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.writer import StoreWriter

T0 = 1_795_000_000.0


class Clocks:
    """A wall clock and a monotonic clock that tests move: together (time passing) or the wall alone (a step)."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def sample(node: str, t: float) -> NodeSample:
    """One GPU of `node` drawing 100 W, stamped `t`."""
    return NodeSample(node, t, gpus=(GpuSample(node, 0, uuid=f"GPU-{node}", name="H100", power_w=100.0),))


def writer_for(store: Store, clocks: Clocks, nodes: list[str]) -> StoreWriter:
    """A writer of `nodes` into `store`, on `clocks` (1 s interval)."""
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    writer.set_nodes(nodes)
    return writer
