"""A damaged store ends the controller (exit 1, one sentence and a hint) at the first write it refuses; a full one
does not, and samples the store still refused when the writer stops are counted as dropped, never lost unseen."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_process import run_cli_text
from damaged_store import damage
from store_size_limit import cap_at_current_size

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store, StoreDamaged
from factoryctl.telemetry.writer import StoreWriter

T0 = 1_700_000_040.0


def sample(t: float, node: str = "n1", gpus: int = 8) -> NodeSample:
    return NodeSample(
        node, t, gpus=tuple(GpuSample(node, i, uuid=f"GPU-{node}-{i}", power_w=300.0) for i in range(gpus))
    )


def damaged_store(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "factory.db"
    store = Store(path)
    store.write([sample(T0)])
    store.close()
    damage(path, "node")
    return path


def test_writer_stops_writing_a_damaged_store_and_counts_what_it_drops(tmp_path: Path) -> None:
    clock = [T0 + 10]
    writer = StoreWriter(Store(damaged_store(tmp_path)), interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["n1"])
    writer.offer(sample(T0 + 9))
    writer.offer(sample(T0 + 10))
    assert writer.flush() == 0
    assert isinstance(writer.damaged, StoreDamaged)
    assert writer.stats()["pending"] == 0
    assert (writer.stats()["dropped"], writer.stats()["store_errors"]) == (2, 1)
    clock[0] += 1
    writer.offer(sample(T0 + 11))
    writer.flush()  # not written again: dropped at once
    writer.stop()
    assert (writer.stats()["dropped"], writer.stats()["store_errors"], writer.stats()["pending"]) == (3, 1, 0)


def test_full_store_keeps_samples_and_counts_the_ones_left_at_stop_as_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "factory.db")
    store.write([sample(T0)])
    cap_at_current_size(store)
    clock = [T0 + 200]
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["n1"])
    for t in range(100, 200):
        writer.offer(sample(T0 + t))
    with caplog.at_level(logging.ERROR, logger="factoryctl.telemetry"):
        assert writer.flush() == 0
    assert writer.stats()["pending"] == 100  # kept for the next attempt
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        f"the store at {store.path} is full (the disk or the database size limit), so the samples were not saved. "
        "Up to 120 s of samples are kept in memory and written when it accepts writes again. "
        "hint: free disk space, or shorten controller.raw_retention in factory.yaml."
    )
    writer.stop()  # still full: what it held is lost, and counted
    assert (writer.stats()["pending"], writer.stats()["dropped"]) == (0, 100)


@pytest.mark.slow
def test_controller_on_a_damaged_store_exits_1_with_one_sentence(tmp_path: Path) -> None:
    damaged_store(tmp_path)
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: ctl\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local, sim: h100-sxm, gpus: 2}}\n"
        "controller:\n  interval_s: 0.5\n"
    )
    proc = run_cli_text("--config", str(config), "controller", "run", timeout=60)
    assert proc.returncode == 1  # no SIGTERM: it ended on its own
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    assert f"the store {tmp_path / 'state' / 'factory.db'} is damaged (database disk image is malformed)" in errors[0]
    assert "exits (status 1)" in errors[0]
    assert "hint: move it aside" in errors[0]
    assert "((" not in errors[0]
    assert ".)" not in errors[0]
    (stopped,) = [line for line in proc.stderr.splitlines() if "controller stopped: " in line]
    stats = json.loads(stopped.split("controller stopped: ", 1)[1])
    assert (stats["samples"], stats["pending"], stats["store_errors"]) == (0, 0, 1)
