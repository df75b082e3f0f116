"""A controller outage is billed by one gap rule: adjacent windows add up, and pruning leaves a window's energy be.

The controller ran :23 to 1:12, stopped 40 s, ran 1:53 to 2:37 (1 s samples; the GPU kept drawing, so its counter
rose across the outage). Inside a raw window the counter's steps were summed whatever their gap, so the outage was
billed in full; a window whose edge cut it billed its step nothing; the rollups bill it as a silence, the last
reading held for one interval. So 0:00-1:30 plus 1:30-3:00 was 34 % short of 0:00-3:00, and a window's energy fell
once its raw rows were pruned. Now a counter step across a silence is billed as the rollups bill it, everywhere.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
RUNS = [*range(23, 73), *range(113, 158)]  # seconds after T0 with a sample: the outage from 72 to 113
PEAK_W = 400.0
#: one sampling interval per run at the highest power: the documented tolerance for a pruned window
ONE_INTERVAL_PER_RUN = len([1, 2]) * 1.0 * PEAK_W


def watts(second: float) -> float:
    return 300.0 + 100.0 * math.sin(second / 7)


def counter(second: int) -> float:
    """The driver's counter (J): what was drawn from T0, the outage too (one-second steps of the power curve)."""
    return sum(watts(s + 0.5) for s in range(second))


def written(path: Path) -> Store:
    store = Store(path)
    store.write(
        [NodeSample("s1", T0 + s, gpus=(GpuSample("s1", 0, power_w=watts(s), energy_j=counter(s)),)) for s in RUNS]
    )
    return store


def joules(store: Store, lo: float, hi: float) -> float:
    ((_, _, found, _),) = store.energy(["s1"], T0 + lo, T0 + hi)
    return found


def pruned(store: Store, kept_from_s: float | None) -> Store:
    """The store with its raw rows before T0 + `kept_from_s` rolled up and pruned (None: as written)."""
    if kept_from_s is not None:
        done = T0 + 180 + 600
        store.rollup(now=done)
        store.prune(raw_retention_s=done - (T0 + kept_from_s), rollup_retention_s=30 * 86400, now=done)
        assert store.count_rows()["sample"] == len([s for s in RUNS if s >= kept_from_s])
    return store


#: raw rows as written, kept from 1:00 (the outage's minute raw), from 2:00 (the outage rolled up), none kept
PRUNED = [None, 60, 120, 180]


@pytest.mark.parametrize("kept_from_s", PRUNED)
@pytest.mark.parametrize("cut", [30, 73, 90, 150])  # before the outage, in its first interval, inside, after
def test_two_adjacent_windows_add_up_to_the_whole(tmp_path: Path, cut: int, kept_from_s: float | None) -> None:
    store = pruned(written(tmp_path / "cut.db"), kept_from_s)
    whole = joules(store, 0, 180)
    assert joules(store, 0, cut) + joules(store, cut, 180) == pytest.approx(whole, abs=0.01)  # was 34 % short at 90
    store.close()


def test_the_outage_is_billed_one_interval_as_the_rollups_bill_it(tmp_path: Path) -> None:
    store = written(tmp_path / "outage.db")
    runs = counter(72) - counter(23) + counter(157) - counter(113)
    assert joules(store, 0, 180) == pytest.approx(runs + watts(72), abs=1.0)  # was runs + the 41 s outage
    store.close()


#: on whole minutes: a rollup does not keep where in its minute its samples were, so a window's edge inside a minute
#: that was rolled up bills that minute's covered time from the minute's start (docs/telemetry.md)
WINDOWS = [(0, 180), (0, 120), (60, 120), (60, 180), (120, 180)]


@pytest.mark.parametrize("kept_from_s", PRUNED[1:])
def test_pruning_raw_rows_into_rollups_leaves_each_window_be(tmp_path: Path, kept_from_s: float) -> None:
    store = written(tmp_path / "prune.db")
    before = {window: joules(store, *window) for window in WINDOWS}
    pruned(store, kept_from_s)
    for window in WINDOWS:  # was 12 kJ (the outage) less for every window holding it
        assert (window, joules(store, *window)) == (window, pytest.approx(before[window], abs=ONE_INTERVAL_PER_RUN))
    store.close()
