"""`telemetry export` streams: a node's raw rows are read a bounded batch at a time, never all at once.

Export read every row of a node in one query before writing the first: 6 hours of one 8-GPU node at 1 Hz held
92 MB. Rows here cross several batch boundaries (the batch is made small), and come out whole, in order, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store import history
from factoryctl.store.sqlite import Store

T0 = 1_700_000_000.0
BATCH = 7


def stored(path: Path) -> Store:
    store = Store(path)
    samples = []
    for node, gpus in (("a1", 3), ("b1", 1)):
        for second in range(40):
            readings = tuple(GpuSample(node, g, power_w=100.0 + g, utilization_pct=second) for g in range(gpus))
            samples.append(NodeSample(node, T0 + second, gpus=readings))
    store.write(samples)
    return store


def test_export_reads_bounded_batches_and_yields_every_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "EXPORT_BATCH", BATCH, raising=False)
    store = stored(tmp_path / "export.db")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    rows: list[dict[str, Any]] = list(store.export(["a1", "b1"], T0 + 5, T0 + 35))
    store._db.set_trace_callback(None)
    store.close()
    assert [(r["node"], r["gpu"], r["time"]) for r in rows] == [
        (node, gpu, T0 + second)
        for node, gpus in (("a1", 3), ("b1", 1))
        for gpu in range(gpus)
        for second in range(5, 35)
    ]
    assert [r["utilization_pct"] for r in rows[:3]] == [5, 6, 7]
    assert rows[-1]["power_w"] == 100.0
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM sample" in s]
    assert len(reads) >= len(rows) // BATCH  # was one query per node, every row at once
    assert all(f"LIMIT {BATCH}" in s for s in reads)
