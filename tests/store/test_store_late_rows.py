"""Rows written into minutes already rolled up (a step back of the wall clock, a late or skewed node).

Such rows used to be merged into their minute's rollup and deleted whenever they fell below the highest cut
retention ever applied: after a step back from a clock a day ahead, every new raw row was deleted two minutes after
it was written. One late row also made the next rollup re-read every GPU's rows in one transaction, and the note
that a rollup was owed lived in memory only, so a restart lost it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from store_rows import rows, value

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.samples import steps_in_force
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
DAY = 86400.0
HOUR = 3600.0


def sample(node: str, t: float, power: float = 100.0) -> NodeSample:
    return NodeSample(node, t, gpus=(GpuSample(node, 0, uuid=f"GPU-{node}", name="H100", power_w=power),))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "factory.db")


def rollups(store: Store) -> dict[tuple[str, float], tuple[int, float, float]]:
    """(node, minute) -> (rows, min power, max power), from the rollups alone."""
    found = rows(
        store.path,
        "SELECT node.name, t_min, n, power_mw_min, power_mw_max FROM rollup JOIN node ON node.id = rollup.node_id",
    )
    return {(name, t * 60.0): (n, low / 1000, high / 1000) for name, t, n, low, high in found}


def test_after_a_step_back_new_raw_rows_are_kept_until_retention(store: Store) -> None:
    ahead = T0 + DAY  # the clock ran a day ahead, long enough for retention to prune by it
    store.write([sample("n1", ahead + k) for k in range(600)])
    store.rollup(ahead + 600)
    store.prune(6 * HOUR, 30 * DAY, ahead + 600)
    store.write([sample("n1", T0 + 600 + k) for k in range(600)])  # NTP stepped it back a day
    store.rollup(T0 + 1200)
    store.prune(6 * HOUR, 30 * DAY, T0 + 1200)
    assert value(store.path, "SELECT COUNT(*) FROM sample WHERE t_ms < ?", int(ahead * 1000)) == 600
    assert [rollups(store)[("n1", T0 + 600 + 60 * m)][0] for m in range(8)] == [60] * 8  # rolled up as well


def test_a_late_row_rolls_up_its_own_gpu_again_not_the_fleet(store: Store) -> None:
    nodes = [f"n{i}" for i in range(5)]
    store.write([sample(n, T0 + k) for k in range(600) for n in nodes])
    assert store.rollup(T0 + 720) == 50  # 10 minutes of 5 GPUs
    store.write([sample("n3", T0 + 60.5, power=400.0)])  # minute 1, nine minutes late
    assert store.rollup(T0 + 780) == 9  # n3's minutes 1 to 9 (no GPU has rows in minute 10)
    assert rollups(store)[("n3", T0 + 60)] == (61, 100.0, 400.0)
    assert rollups(store)[("n2", T0 + 60)] == (60, 100.0, 100.0)


def test_a_step_back_rolls_up_what_was_written_since_not_the_whole_table(store: Store) -> None:
    store.write([sample(n, T0 + k) for k in range(1800) for n in ("n1", "n2")])
    assert store.rollup(T0 + 1920) == 60
    store.write([sample("n1", T0 + 1500.5 + k, power=300.0) for k in range(0, 60, 2)])  # the clock went back 7 min
    assert store.rollup(T0 + 1620) == 0  # the mark comes back; minute 25 is not finished on this clock yet
    assert store.get_meta("rollup_upto_min") == str(int((T0 + 1620) // 60) - 2)
    assert store.rollup(T0 + 1680) == 2  # minute 25 of both GPUs, as any minute
    assert rollups(store)[("n1", T0 + 1500)] == (90, 100.0, 300.0)


def test_a_row_written_late_before_a_restart_is_rolled_up_after_it(tmp_path: Path) -> None:
    before = Store(tmp_path / "factory.db")
    before.write([sample("n1", T0 + k) for k in range(120)])
    before.rollup(T0 + 240)  # minutes 0 and 1 rolled up, their raw rows kept
    before.write([sample("n1", T0 + 60.5 + k, power=400.0) for k in range(20)])
    before.close()  # the controller restarted before its next rollup
    store = Store(tmp_path / "factory.db")
    store.rollup(T0 + 300)
    assert rollups(store)[("n1", T0 + 60)] == (80, 100.0, 400.0)
    store.prune(60, DAY, T0 + 300)
    assert rollups(store)[("n1", T0 + 60)] == (80, 100.0, 400.0)


def test_forward_steps_are_kept_in_the_store_until_retention_is_past_them(store: Store) -> None:
    steps = [(T0, DAY), (T0 + 2 * DAY, 60.0)]
    store.save_clock_steps(steps)
    assert store.clock_steps() == steps
    assert steps_in_force(T0 + DAY + HOUR, HOUR, steps) == steps  # rows before the first are an hour old
    assert steps_in_force(T0 + DAY + 3 * HOUR, HOUR, steps) == steps[1:]
    assert steps_in_force(T0 + 3 * DAY, HOUR, steps) == []


def test_a_prune_without_a_controller_honours_the_steps_it_saved(store: Store) -> None:
    """A cron sweep while the controller is stopped prunes too: a saved +1 day step still protects the rows
    stamped before it (all 360 were deleted by a sweep that ignored it)."""
    store.write([sample("n1", T0 + k) for k in range(0, 3600, 10)])
    store.rollup(T0 + 3600 + 300)
    store.save_clock_steps([(T0 + 3600, 86400.0)])
    now = T0 + 3600 + 86400 + 600  # ten minutes after the step, in the stepped clock
    store.prune(6 * 3600, 30 * 86400, now)  # no steps given: the saved ones
    assert store.count_rows()["sample"] == 360


def test_after_a_step_back_past_raw_retention_late_rows_still_reach_their_rollup(store: Store) -> None:
    """The clock ran a day ahead for 30 minutes and pruned by it; after NTP steps it back, a row arriving 7 minutes
    late belongs in its minute's rollup (every raw row of that minute is kept): the pruned mark was the stepped
    clock's cut, a day ahead of rows that were all still there."""
    hour = 3600
    for k in range(30):  # the wrong clock, a day ahead, with maintenance every minute
        at = T0 + 86400 + k * 60
        store.write([sample("n1", at + j) for j in range(0, 60, 10)])
        store.rollup(at + 60)
        store.prune(hour, 30 * 86400, at + 60, steps=())
    for k in range(10):  # stepped back: ten minutes on the right clock
        at = T0 + k * 60
        store.write([sample("n1", at + j) for j in range(0, 60, 10)])
        store.rollup(at + 60)
        store.prune(hour, 30 * 86400, at + 60, steps=())
    minute = int(T0 // 60) + 3
    store.write([sample("n1", minute * 60 + 55.0, 700.0)])  # a reconnecting agent's backlog
    store.rollup(T0 + 660)
    assert rows(store.path, "SELECT n FROM rollup WHERE t_min = ?", minute) == [(7,)]


def test_the_pruned_mark_never_moves_back_when_a_later_prune_deletes_only_older_rows(store: Store) -> None:
    """A late row far below the mark, pruned later under a longer retention, must not lower the mark."""
    store.write([sample("n1", T0 + k) for k in range(0, 7200, 10)])
    store.rollup(T0 + 7200)
    store.prune(HOUR, 30 * DAY, T0 + 7200)  # raw rows older than an hour go: the mark rises to T0 + 1 h
    mark = store.get_meta("raw_pruned_below_ms")
    assert mark is not None
    assert int(mark) >= int((T0 + HOUR - 60) * 1000)
    store.write([sample("n1", T0 - DAY)])  # a node's late row, a day older than anything kept
    store.rollup(T0 + 7260)  # rolled up first, as every row is before it may go
    store.prune(2 * HOUR, 30 * DAY, T0 + 7200)  # deletes only that row
    assert value(store.path, "SELECT COUNT(*) FROM sample WHERE t_ms < ?", int(T0 * 1000)) == 0
    assert store.get_meta("raw_pruned_below_ms") == mark
