"""A past window's energy does not change when its raw rows are pruned: a minute partly sampled is billed for the
part its samples covered, not as a whole minute.

A controller started at :31 and stopped at :20 leaves two partial minutes. The energy counter (raw rows) bills
what was sampled; once the rows are pruned the 1-minute rollups must bill about the same, from their sample counts
and the counts of the minutes next to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary (16:52 in the review's report)
WATTS = 500.0


def sampled(tmp_path: Path, first_s: float, last_s: float, every_s: float) -> Store:
    """One GPU at a constant `WATTS`, sampled every `every_s` from T0 + `first_s` to T0 + `last_s`, rolled up."""
    store = Store(tmp_path / "factory.db")
    steps = round((last_s - first_s) / every_s)
    store.write(
        [
            NodeSample("e1", t, gpus=(GpuSample("e1", 0, power_w=WATTS, energy_j=WATTS * (t - T0)),))
            for t in (T0 + first_s + step * every_s for step in range(steps + 1))
        ]
    )
    store.rollup(now=T0 + last_s + 600)
    return store


def joules(store: Store, since_s: float, until_s: float) -> tuple[float, str]:
    ((_, _, found, source),) = store.energy(["e1"], T0 + since_s, T0 + until_s)
    return found, source


def pruned(store: Store, last_s: float) -> Store:
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + last_s + 600)
    assert store.count_rows()["sample"] == 0
    return store


@pytest.mark.parametrize("every_s", [0.25, 1.0, 5.0])
def test_a_partly_sampled_first_and_last_minute_bill_the_same_before_and_after_pruning(
    tmp_path: Path, every_s: float
) -> None:
    store = sampled(tmp_path, first_s=31, last_s=4 * 60 + 20, every_s=every_s)  # 16:52:31 to 16:56:20
    windows = [(0, 60), (4 * 60, 5 * 60), (0, 5 * 60), (60, 4 * 60)]
    before = {window: joules(store, *window) for window in windows}
    assert before[(0, 60)] == (pytest.approx(WATTS * 29, rel=0.02), "counter")
    pruned(store, 4 * 60 + 20)
    for window in windows:
        after, source = joules(store, *window)
        assert source == "rollup"
        # within one sample's spread of the counter, not the whole minute (twice as much for the first one)
        assert after == pytest.approx(before[window][0], abs=WATTS * max(2 * every_s, 60 / 10)), window


def test_a_minute_alone_still_counts_whole_as_the_gap_rule_says(tmp_path: Path) -> None:
    """One sample every 5 minutes (a cron sweep): each counts until the next, whatever its minute's count."""
    store = Store(tmp_path / "factory.db")
    for minute in range(0, 61, 5):
        store.write([NodeSample("e1", T0 + minute * 60 + 31, gpus=(GpuSample("e1", 0, power_w=WATTS),))])
    store.rollup(now=T0 + 3 * 3600)
    pruned(store, 3 * 3600)
    assert joules(store, 0, 3600) == (pytest.approx(WATTS * 3600, rel=0.01), "rollup")
