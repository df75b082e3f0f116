"""The nvidia-smi fallback (a node without Python) with a lost GPU: one GPU is lost, the node is not down.

nvidia-smi prints `[GPU is lost]` in every column of that GPU's row, its index too; the wire check then refused the
whole sample (no integer index) and the node went down with `agent`, reconnecting in a loop.
"""

from __future__ import annotations

from factoryctl.model.telemetry import GpuSample
from factoryctl.transport.smi_query import QUERY, parse_query


def test_a_lost_gpus_row_keeps_its_place_as_its_index():
    fine = ", ".join("0" if key == "index" else "1" for _, key, _ in QUERY)
    lost = ", ".join(["[GPU is lost]"] * len(QUERY))
    gpus = parse_query(f"{fine}\n{lost}\n")
    assert [g["index"] for g in gpus] == [0, 1]
    assert "index" not in gpus[1]["null_reasons"]
    sample = GpuSample.from_json("n1", gpus[1])
    assert sample.index == 1
    assert sample.power_w is None
    assert "gpu_lost" in sample.null_reasons.values()
