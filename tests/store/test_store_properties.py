"""Properties: 1-minute rollups answer a stepped history query exactly as the raw rows did (min, max; mean to the
stored unit), and a batch written twice adds nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0

powers = st.lists(st.floats(min_value=50.0, max_value=1000.0, allow_nan=False), min_size=1, max_size=240)
gaps = st.lists(st.integers(min_value=1, max_value=40), min_size=240, max_size=240)


@settings(max_examples=25, deadline=None)
@given(values=powers, steps=gaps)
def test_rollups_match_raw_history(values: list[float], steps: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "f.db")
        t, samples = T0, []
        for value, gap in zip(values, steps, strict=False):
            samples.append(NodeSample("n1", t, gpus=(GpuSample("n1", 0, power_w=value),)))
            t += gap / 4
        assert store.write(samples) == len(samples)
        assert store.write(samples) == 0
        end = t + 1
        raw = store.history(["n1"], "power_w", T0, end, step=60)[0].points
        store.rollup(now=end + 600)
        store.prune(raw_retention_s=0, rollup_retention_s=86400 * 365, now=end + 600)
        assert store.count_rows()["sample"] == 0
        rolled = store.history(["n1"], "power_w", T0, end, step=60)[0].points
        store.close()
    assert [p.time for p in rolled] == [p.time for p in raw]
    for r, o in zip(rolled, raw, strict=True):
        assert (r.min, r.max) == (o.min, o.max)
        assert r.value == pytest.approx(o.value, abs=0.001)
