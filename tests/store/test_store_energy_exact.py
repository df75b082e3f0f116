"""Energy from raw rows, from rollups and across the seam between them equals the integral of the power drawn.

Each test computes that integral itself (each reading held until the next, unless the gap is a silence by the
documented rule: more than twice the median gap, then the median gap) and compares every way the store can answer:
raw rows only, rolled up but not pruned, pruned to rollups, and a window whose first part is rollups and last part
raw rows. They found three ways a window lost or double counted time:

- a window over rollups alone that ended inside a minute left that minute out (a 90 s window of 1 s samples read
  60 s);
- at the seam the time from the first raw row's minute start to that row (the reading before it, held into the
  minute) was billed by neither side (15 s of every window at 30 s samples);
- a minute rolled up before its next sample arrived (a late batch, or a sampling interval over two minutes) kept
  the time its last sample covered as a guess: the first sample of a run at 300 s was billed 60 s of 300, a run
  started at :31 at 10 s whose 1:01 sample came late was billed 30 s for its first minute, 1 s of it again in the next.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
from store_rows import rows

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
WATTS = 500.0
NODES = ("c1", "p1")  # c1 has the driver's energy counter, p1 power readings only


def written(offsets: Sequence[float]) -> list[NodeSample]:
    """Both nodes at a constant `WATTS`, sampled at T0 + each offset (s); c1's counter rises by what was drawn."""
    samples = []
    for offset in offsets:
        used = exact(offsets, (offsets[0], offset))
        samples.append(NodeSample("c1", T0 + offset, gpus=(GpuSample("c1", 0, power_w=WATTS, energy_j=used),)))
        samples.append(NodeSample("p1", T0 + offset, gpus=(GpuSample("p1", 0, power_w=WATTS),)))
    return samples


def exact(offsets: Sequence[float], window: tuple[float, float]) -> float:
    """Joules drawn in `window` (offsets): each reading held until the next, or the median gap across a silence."""
    gaps = sorted(b - a for a, b in itertools.pairwise(offsets))
    usual = gaps[len(gaps) // 2]
    total = 0.0
    for begin, following in itertools.pairwise(offsets):
        held = following - begin if following - begin <= 2 * usual else usual
        total += max(0.0, min(begin + held, window[1]) - max(begin, window[0])) * WATTS
    return total


def energy(store: Store, window: tuple[float, float]) -> dict[str, tuple[float, str]]:
    found = store.energy(list(NODES), T0 + window[0], T0 + window[1])
    return {node: (joules, source) for node, _, joules, source in found}


def assert_exact(store: Store, offsets: Sequence[float], windows: Sequence[tuple[float, float]], source: str) -> None:
    for window in windows:
        for node, (joules, found) in energy(store, window).items():
            assert (node, window, joules) == (node, window, pytest.approx(exact(offsets, window), abs=0.01))
            assert (node, found) == (node, source.replace("counter", "power") if node == "p1" else source), window


def every(first_s: float, last_s: float, every_s: float) -> list[float]:
    """Offsets from `first_s` on, `every_s` apart, to `last_s` at most."""
    return [first_s + step * every_s for step in range(int((last_s - first_s) / every_s + 1e-9) + 1)]


#: (interval, offset of the first sample): aligned to the minute and not, with a silence from 6:00 to 9:00
RUNS = [(1.0, 0.0), (1.0, 0.5), (10.0, 0.0), (10.0, 5.0), (30.0, 15.0), (30.0, 31.0)]


def steady_run(every_s: float, first_s: float) -> list[float]:
    """Twenty minutes, silent from 6:00 to 9:00 (a node unreachable)."""
    return [s for s in every(first_s, 1200, every_s) if not 360 <= s < 540]


#: Windows inside the run (before its newest sample, which rollups bill one interval more): whole minutes and not,
#: one starting in the silence. None ends in it: the counter step across a silence that straddles a window's end
#: counts nothing (docs/telemetry.md, Energy), where a power reading counts its usual spacing.
WINDOWS = [(60, 300), (90, 600), (61.5, 329.25), (120, 1080), (100, 700), (60, 1140), (530, 1100)]


@pytest.mark.parametrize(("every_s", "first_s"), RUNS)
def test_raw_rolled_up_and_pruned_windows_bill_the_power_drawn(tmp_path: Path, every_s: float, first_s: float) -> None:
    offsets = steady_run(every_s, first_s)
    store = Store(tmp_path / "factory.db")
    store.write(written(offsets))
    assert_exact(store, offsets, WINDOWS, "counter")  # (a) raw rows only
    done = T0 + 1200 + 600
    store.rollup(now=done)
    assert_exact(store, offsets, WINDOWS, "counter")  # (b) rolled up, not pruned: raw rows still answer
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=done)
    assert store.count_rows()["sample"] == 0
    assert_exact(store, offsets, WINDOWS, "rollup")  # (c) rollups only: (100, 700) left out 11:00 to 11:40
    store.close()


@pytest.mark.parametrize(("every_s", "first_s"), RUNS)
@pytest.mark.parametrize("kept_from_s", [300, 600, 900])
def test_a_window_of_rollups_then_raw_rows_bills_the_seam_once(
    tmp_path: Path, every_s: float, first_s: float, kept_from_s: float
) -> None:
    """Raw rows pruned up to `kept_from_s` (a whole minute): the reading before it held into its minute counts once.

    Windows whose raw part has two readings at least: raw rows bill nothing with fewer (a source needs two).
    """
    offsets = steady_run(every_s, first_s)
    store = Store(tmp_path / "factory.db")
    store.write(written(offsets))
    done = T0 + 1200 + 600
    store.rollup(now=done)
    store.prune(raw_retention_s=done - (T0 + kept_from_s), rollup_retention_s=30 * 86400, now=done)
    spanning = [w for w in WINDOWS if w[0] < kept_from_s and sum(kept_from_s <= s < w[1] for s in offsets) >= 2]
    assert_exact(store, offsets, spanning, "rollup+counter")  # lost 15 s at 30 s from :15
    store.close()


@pytest.mark.parametrize("every_s", [1, 10, 30])
def test_a_minute_rolled_up_before_its_next_sample_arrived_is_not_billed_twice(tmp_path: Path, every_s: int) -> None:
    """Started at :31; the samples from 1:01 on arrive late, after minute 0 was rolled up (at 30 s, :31 alone)."""
    offsets = every(31, 600, every_s)
    store = Store(tmp_path / "factory.db")
    samples = written(offsets)
    store.write([s for s in samples if s.time < T0 + 61])
    store.rollup(now=T0 + 180)  # minute 0: its newest sample had none after it yet
    store.write([s for s in samples if s.time >= T0 + 61])
    assert_exact(store, offsets, [(0, 120), (0, 540), (30, 300)], "counter")  # two raw readings at least
    store.rollup(now=T0 + 1200)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + 1200)
    # minute 0 was 30 s at 10 s (1 s of it again in minute 1), 60 s at 30 s, where 29 s were drawn
    assert_exact(store, offsets, [(0, 60), (0, 120), (0, 540)], "rollup")
    store.close()


@pytest.mark.parametrize("every_s", [150, 210, 250, 300])
def test_an_interval_over_two_minutes_is_billed_the_power_drawn_once_pruned(tmp_path: Path, every_s: int) -> None:
    """Samples on multiples of the interval from the epoch (as agents take them), rolled up every minute (at :30,
    as the controller does), so a minute is rolled up before the sample after it is taken."""
    first = every_s - T0 % every_s
    offsets = [first + k * every_s for k in range(int(7200 // every_s))]
    store = Store(tmp_path / "factory.db")
    pending = list(written(offsets))
    for minute in range(int(offsets[-1] // 60) + 1):
        now = T0 + minute * 60 + 30
        store.write([s for s in pending if s.time <= now])
        pending = [s for s in pending if s.time > now]
        store.rollup(now=now)
    store.write(pending)
    run = (offsets[0] // 60 * 60, offsets[-1] // 60 * 60)  # the minutes of the first and the newest sample
    windows = [run, (run[0], run[0] + 3600), (run[0] + 1800, run[1])]
    assert_exact(store, offsets, windows, "counter")
    done = T0 + offsets[-1] + 3600
    store.rollup(now=done)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=done)
    # was 300 s short at 300 s (the first sample, rolled up alone, counted a minute), 150 s at 250 s
    assert_exact(store, offsets, windows, "rollup")
    store.close()


def open_notes(store: Store) -> list[str]:
    """The minutes noted as rolled up with no sample after them yet, one per GPU, from the file."""
    return sorted(value for (value,) in rows(store.path, "SELECT value FROM meta WHERE key LIKE 'rollup_open:%'"))


@pytest.mark.parametrize("pruned", [True, False])
def test_a_node_gone_quiet_is_noted_while_a_sample_may_still_come_then_forgotten(tmp_path: Path, pruned: bool) -> None:
    """The note of a minute rolled up with no sample after it (per GPU, in the meta table) does not outlive the
    time a sample after it could still be held from it, nor its raw rows, and never holds back retention."""
    store = Store(tmp_path / "factory.db")
    store.write(written(every(0, 599, 1)))  # ten minutes, then nothing
    store.rollup(now=T0 + 900)
    assert open_notes(store) == [str(int(T0 // 60) + 9)] * 2
    if pruned:
        store.prune(raw_retention_s=60, rollup_retention_s=30 * 86400, now=T0 + 900)
        assert store.count_rows()["sample"] == 0  # the note kept nothing from retention
        store.rollup(now=T0 + 960)
    else:
        store.rollup(now=T0 + 3 * 3600)
        assert open_notes(store) == [str(int(T0 // 60) + 9)] * 2  # a sample two hours on still follows it
        store.rollup(now=T0 + 4 * 3600)
    assert open_notes(store) == []
    assert_exact(store, every(0, 599, 1), [(0, 540)], "rollup" if pruned else "counter")
    store.close()
