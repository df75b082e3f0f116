"""A minute's rollup keeps the time its power samples covered, so energy from rollups bills what the counter billed.

The rollups kept a sample count only, and energy inferred a minute's share of it from the counts of the minutes
next to it: a controller run shorter than a minute, or over two partial minutes, had no full minute to compare with
and was billed whole minutes once its raw rows were pruned (a past window's energy grew), and a change of sampling
interval (a config reload) fooled the inference. A store written before the rollups kept that time (schema 3) opens,
migrates, and its old rollups are billed by the inference as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from store_rows import rows as stored

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.coverage import covered_by_minute
from factoryctl.store.schema import MIGRATIONS, SCHEMA_VERSION
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
WATTS = 500.0


def at_times(offsets: Sequence[float]) -> list[NodeSample]:
    """e1/0 at a constant `WATTS` with its energy counter, sampled at T0 + each offset (seconds)."""
    return [NodeSample("e1", T0 + s, gpus=(GpuSample("e1", 0, power_w=WATTS, energy_j=WATTS * s),)) for s in offsets]


def every(first_s: float, last_s: float, every_s: float) -> list[float]:
    """Offsets from `first_s` on, `every_s` apart, to `last_s` at most."""
    return [first_s + step * every_s for step in range(int((last_s - first_s) / every_s + 1e-9) + 1)]


def joules(store: Store, window: tuple[float, float]) -> tuple[float, str]:
    ((_, _, found, source),) = store.energy(["e1"], T0 + window[0], T0 + window[1])
    return found, source


def before_and_after_pruning(
    tmp_path: Path, offsets: Sequence[float], windows: Sequence[tuple[float, float]]
) -> tuple[dict[tuple[float, float], float], dict[tuple[float, float], float], Path]:
    """Each window's joules from the raw rows (the counter), then from the rollups once the raw rows are pruned."""
    path = tmp_path / "factory.db"
    store = Store(path)
    store.write(at_times(offsets))
    before = {}
    for window in windows:
        before[window], source = joules(store, window)
        assert source == "counter", window
    done = T0 + offsets[-1] + 600
    store.rollup(now=done)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=done)
    assert store.count_rows()["sample"] == 0
    after = {}
    for window in windows:
        after[window], source = joules(store, window)
        assert source == "rollup", window
    store.close()
    return before, after, path


def covered_ms(path: Path) -> list[tuple[int, int | None]]:
    """(minute from T0, the time covered) of e1/0's rollups, from the file."""
    return [
        (int(t_min - T0 // 60), covered)
        for t_min, covered in stored(path, "SELECT t_min, power_covered_ms FROM rollup ORDER BY t_min")
    ]


@pytest.mark.parametrize("every_s", [0.25, 1.0, 5.0])
def test_a_run_shorter_than_a_minute_bills_the_same_before_and_after_pruning(tmp_path: Path, every_s: float) -> None:
    """From :10 to :40: 30 s, not the whole minute (nor two, for a window ending in the minute after)."""
    windows = [(0, 60), (-60, 120), (0, 600), (-3600, 3600)]
    before, after, path = before_and_after_pruning(tmp_path, every(10, 40, every_s), windows)
    for window in windows:
        assert before[window] == pytest.approx(WATTS * 30, rel=0.01), window
        # the newest sample counts for one interval (the counter stops at it): within one interval and a second
        assert after[window] == pytest.approx(before[window], abs=WATTS * (every_s + 1)), window  # was 60 and 120 s
    assert covered_ms(path) == [(0, round((30 + every_s) * 1000))]


@pytest.mark.parametrize("every_s", [0.25, 1.0, 5.0])
def test_a_run_over_two_partial_minutes_bills_the_same_before_and_after_pruning(tmp_path: Path, every_s: float) -> None:
    """From :31 to 1:20: 29 s in the first minute, 20 in the second (each was billed as a whole or a share of 29)."""
    windows = [(0, 60), (60, 120), (0, 120), (-60, 180)]
    offsets = every(31, 80, every_s)
    before, after, path = before_and_after_pruning(tmp_path, offsets, windows)
    second = offsets[-1] - 60  # 20 s, 16 at 5 s
    assert (before[(0, 60)], before[(60, 120)]) == (pytest.approx(WATTS * 29), pytest.approx(WATTS * second))
    for window in windows:
        assert after[window] == pytest.approx(before[window], abs=WATTS * (every_s + 1)), window
    assert covered_ms(path) == [(0, 29_000), (1, round((second + every_s) * 1000))]


def test_a_change_of_interval_mid_minute_is_billed_for_the_time_covered(tmp_path: Path) -> None:
    """Started at :31 sampling every 5 s, reloaded at 1:30 to every second: the first minute is 29 s, not 6/36 of 60.

    The count inference took the next minute's 36 samples (6 at 5 s, 30 at 1 s) for a full minute's.
    """
    offsets = [*every(31, 86, 5), *every(90, 200, 1)]
    windows = [(0, 60), (60, 120), (0, 180), (0, 240)]
    before, after, path = before_and_after_pruning(tmp_path, offsets, windows)
    assert before[(0, 60)] == pytest.approx(WATTS * 29)  # the counter
    for window in windows:
        assert after[window] == pytest.approx(before[window], abs=WATTS * 2), window  # (0, 60) was 10 s
    assert covered_ms(path) == [(0, 29_000), (1, 60_000), (2, 60_000), (3, 21_000)]


def test_a_silence_inside_a_minute_is_not_covered(tmp_path: Path) -> None:
    """Every second, but none from :20 to :50 (the node unreachable): the reading before counts one second."""
    offsets = [*every(0, 20, 1), *every(50, 179, 1)]
    windows = [(0, 60), (0, 180)]
    _, after, path = before_and_after_pruning(tmp_path, offsets, windows)
    assert covered_ms(path)[0] == (0, 31_000)  # :00 to :21, :50 to 1:00
    assert after[(0, 60)] == pytest.approx(WATTS * 31)


def schema_3_store(path: Path) -> None:
    """A store as factoryctl wrote it before rollups kept the time covered: a run from :31 to 4:20, rolled up."""
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        db.executescript(migration)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO node (id, name) VALUES (1, 'e1')")
    db.execute("INSERT INTO gpu (node_id, idx) VALUES (1, 0)")
    minute = int(T0 // 60)
    for offset, count in enumerate((29, 60, 60, 60, 21)):  # every second
        db.execute(
            "INSERT INTO rollup (node_id, gpu, t_min, n, power_mw_mean, power_mw_n) VALUES (1, 0, ?, ?, ?, ?)",
            (minute + offset, count, round(WATTS * 1000), count),
        )
    db.commit()
    db.close()


def test_a_store_of_schema_3_is_read_as_before_without_migrating_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    schema_3_store(path)
    store = Store(path, readonly=True)
    assert joules(store, (0, 300)) == (pytest.approx(WATTS * (29 + 180 + 21), abs=WATTS), "rollup")
    store.close()
    assert stored(path, "PRAGMA user_version") == [(3,)]


def test_a_store_of_schema_3_migrates_and_bills_old_rollups_by_their_counts_and_new_ones_by_their_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    schema_3_store(path)
    store = Store(path)
    old = WATTS * (29 + 180 + 21)
    assert joules(store, (0, 300)) == (pytest.approx(old, abs=WATTS), "rollup")  # the inference, as before
    store.write(at_times(every(600 + 10, 600 + 40, 1)))  # a run shorter than a minute, after the upgrade
    store.rollup(now=T0 + 1200)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + 1200)
    assert joules(store, (600, 660)) == (pytest.approx(WATTS * 31), "rollup")  # was a whole minute: nothing to compare
    assert joules(store, (0, 1200)) == (pytest.approx(old + WATTS * 31, abs=WATTS), "rollup")
    store.close()
    assert stored(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert covered_ms(path) == [*((offset, None) for offset in range(5)), (10, 31_000)]  # old rows keep NULL


def seconds(first_s: float, last_s: float, every_s: float) -> list[int]:
    """Sample times (ms) from minute 0, as `every`."""
    return [round(s * 1000) for s in every(first_s, last_s, every_s)]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (seconds(0, 179, 1), {0: 60_000, 1: 60_000, 2: 60_000}),  # the newest counts its interval
        (seconds(31, 179, 5), {0: 29_000, 1: 60_000, 2: 61_000}),  # the :31 start; the newest (2:56) counts 5 s
        ([*seconds(0, 30, 1), *seconds(35, 179, 5)], {0: 60_000, 1: 60_000, 2: 60_000}),  # 1 s, then 5 s
        ([*seconds(0, 30, 5), *seconds(31, 179, 1)], {0: 60_000, 1: 60_000, 2: 60_000}),  # 5 s, then 1 s
        ([*seconds(0, 20, 1), *seconds(50, 179, 1)], {0: 31_000, 1: 60_000, 2: 60_000}),  # a silence, held 1 s
        (seconds(31, 931, 300), {0: 269_000, 5: 300_000, 10: 300_000, 15: 331_000}),  # a cron sweep every 5 min
        ([31_000], {0: 60_000}),  # alone: a minute, as the gap rule counts a minute alone
    ],
    ids=["whole", "started at :31", "1 s then 5 s", "5 s then 1 s", "silence", "cron sweep", "alone"],
)
def test_the_time_covered_follows_the_samples_timestamps(times: list[int], expected: dict[int, int]) -> None:
    assert covered_by_minute(times, 0, 20) == expected


def test_only_the_minutes_asked_are_counted_and_the_samples_around_them_give_their_gaps() -> None:
    """Minute 1 of a run from :31 at 5 s, with two samples either side: its lead-in (1 s) and its own 59 s."""
    times = seconds(31, 179, 5)
    around = [t for t in times if 51_000 <= t <= 125_000]
    assert covered_by_minute(around, 1, 2) == {1: 60_000}
    assert covered_by_minute(times, 1, 2) == {1: 60_000}


def test_late_rows_in_a_pruned_minute_leave_its_rollup_and_its_time_as_they_were(tmp_path: Path) -> None:
    """Rows written into a minute already rolled up and pruned (a clock step back) are left out of it: of its time too."""
    path = tmp_path / "factory.db"
    store = Store(path)
    store.write(at_times(every(0, 299, 1)))
    store.rollup(now=T0 + 900)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + 900)
    before = joules(store, (0, 300))
    store.write(at_times([120, 121]))  # late, into minute 2
    store.rollup(now=T0 + 960)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + 960)  # and pruned as the old rows they are
    assert joules(store, (0, 300)) == before == (pytest.approx(WATTS * 300), "rollup")
    store.close()
    assert covered_ms(path)[2] == (2, 60_000)  # not the 2 s of the late rows
