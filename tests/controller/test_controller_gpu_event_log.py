"""GPU faults reach the controller's log, folded per tick: a fleet-wide fault is a few lines, not thousands.

`sim inject all --lost` made 400 `gpu_lost` events in the store and not one log line, even at debug level (XIDs and
ECC errors alike), while docs/controller.md has operators follow `journalctl -u factoryctl -f`. Each kind (and what
it says) is now one line per writer tick, its GPUs folded; errors at ERROR, slowdowns at WARNING, a GPU back at INFO.
The writer under test stores into a real store, on clocks the test moves.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from clocks import Clocks, writer_for

from factoryctl.model.telemetry import GpuSample, NodeSample, XidEvent
from factoryctl.store.sqlite import Store

NODES = [f"g{n:04d}" for n in range(1, 201)]
LOST = {"power_w": "gpu_lost"}


def node_sample(node: str, t: float, **gpu: object) -> NodeSample:
    """Two GPUs of `node`, both with the fields in `gpu`."""
    gpus = tuple(GpuSample(node, i, uuid=f"GPU-{node}-{i}", power_w=100.0, **gpu) for i in range(2))  # type: ignore[arg-type]
    return NodeSample(node, t, gpus=gpus)


class Fleet:
    """200 nodes of two GPUs each, streaming into a writer on a real store, on clocks the test moves."""

    def __init__(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        self.store = Store(tmp_path / "factory.db")
        self.clocks = Clocks()
        self.writer = writer_for(self.store, self.clocks, NODES)
        self.caplog = caplog

    def tick(self, **gpu: object) -> list[tuple[int, str]]:
        """Every node sends a sample with `gpu`'s fields; returns the lines the tick logged about GPUs."""
        self.clocks.tick(1)
        for node in NODES:
            self.writer.offer(node_sample(node, self.clocks.wall, **gpu))
        self.caplog.clear()
        self.writer.flush()
        return [(r.levelno, r.getMessage()) for r in self.caplog.records if "/" in r.getMessage()]


def test_a_fleet_wide_fault_is_one_line_per_kind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="factoryctl.telemetry")
    fleet = Fleet(tmp_path, caplog)
    assert fleet.tick() == []  # healthy: nothing to say
    assert fleet.tick(null_reasons=LOST) == [
        (logging.ERROR, "g[0001-0200]/0-1 (400 GPUs on 200 nodes): GPU fell off the bus")
    ]
    assert fleet.tick() == [(logging.INFO, "g[0001-0200]/0-1 (400 GPUs on 200 nodes): GPU is back")]
    xids = (XidEvent(79, fleet.clocks.wall), XidEvent(48, fleet.clocks.wall))
    assert sorted(fleet.tick(xid_events=xids, ecc_uncorrected=3)) == [
        (logging.ERROR, "g[0001-0200]/0-1 (400 GPUs on 200 nodes): XID 48"),
        (logging.ERROR, "g[0001-0200]/0-1 (400 GPUs on 200 nodes): XID 79"),
        (logging.ERROR, "g[0001-0200]/0-1 (400 GPUs on 200 nodes): uncorrectable ECC errors 3"),
    ]
    kinds = [e.kind for e in fleet.store.events(0, limit=10_000)]
    counted = {kind: kinds.count(kind) for kind in ("gpu_lost", "gpu_back", "xid", "ecc")}
    assert counted == {"gpu_lost": 400, "gpu_back": 400, "xid": 800, "ecc": 400}  # still one event per GPU
    fleet.store.close()


def test_one_gpu_is_its_own_line_and_folded_gpus_keep_theirs_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="factoryctl.telemetry")
    store = Store(tmp_path / "factory.db")
    clocks = Clocks()
    writer = writer_for(store, clocks, ["n1", "n2", "n3"])
    for node in ("n1", "n2", "n3"):
        writer.offer(node_sample(node, clocks.wall))
    writer.flush()
    clocks.tick(1)
    writer.offer(node_sample("n1", clocks.wall, throttle_reasons=("HwSlowdown",)))
    writer.offer(NodeSample("n2", clocks.wall, gpus=(GpuSample("n2", 0, ecc_uncorrected=2), GpuSample("n2", 1))))
    writer.offer(NodeSample("n3", clocks.wall, gpus=(GpuSample("n3", 0), GpuSample("n3", 1, ecc_uncorrected=9))))
    caplog.clear()
    writer.flush()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if "/" in r.getMessage()]
    assert logged == [
        (logging.WARNING, "n1/0-1 (2 GPUs): thermal slowdown (HwSlowdown)"),
        (logging.DEBUG, "n1/0: thermal slowdown (HwSlowdown)"),
        (logging.DEBUG, "n1/1: thermal slowdown (HwSlowdown)"),
        (logging.ERROR, "n2/0, n3/1 (2 GPUs on 2 nodes): uncorrectable ECC errors 2-9"),
        (logging.DEBUG, "n2/0: uncorrectable ECC errors 2"),
        (logging.DEBUG, "n3/1: uncorrectable ECC errors 9"),
    ]
    store.close()
