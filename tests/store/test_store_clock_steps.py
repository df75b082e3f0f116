"""Rollups and retention when the wall clock steps (NTP, the RTC) or rows arrive in minutes already rolled up.

A +1 day step used to prune every row from before it at the next maintenance, leave the rollup mark a day ahead (so
nothing was rolled up again and raw rows were pruned without a rollup), and rows written into minutes already rolled
up (a step back, a late node) were never rolled up before retention deleted them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from store_rows import rows

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.rows import Event
from factoryctl.store.samples import retention_cut
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
DAY = 86400.0
HOUR = 3600.0


def sample(t: float, power: float = 100.0) -> NodeSample:
    return NodeSample(
        node="n1",
        time=t,
        gpus=(GpuSample(node="n1", index=0, uuid="GPU-n1-0", name="H100", power_w=power, energy_j=t),),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "factory.db")


def minute_stats(store: Store, since: float, until: float) -> list[tuple[float, float | None, float | None, float]]:
    """(minute, min, max, mean) of GPU 0's power from the rollups alone."""
    found = rows(
        store.path,
        "SELECT t_min, power_mw_min, power_mw_max, power_mw_mean FROM rollup WHERE t_min >= ? AND t_min < ?"
        " ORDER BY t_min",
        int(since // 60),
        int(until // 60),
    )
    return [(t * 60.0, low / 1000, high / 1000, mean / 1000) for t, low, high, mean in found]


def test_a_forward_step_prunes_nothing_that_is_not_really_past_retention(store: Store) -> None:
    store.write([sample(T0 + s) for s in range(180)], events=[Event(T0, "node_up", "n1 is up", node="n1")])
    stepped = [(T0 + 180, DAY)]  # the clock jumped a day ahead just after those rows
    now = T0 + 180 + DAY + 60  # a minute later, on the stepped clock
    assert store.rollup(now) == 3
    assert store.prune(HOUR, 4 * HOUR, now, stepped) == (0, 0)  # rows 1 to 4 minutes old are kept
    assert store.count_rows()["sample"] == 180
    assert [e.kind for e in store.events(0)] == ["node_up"]
    later = T0 + 180 + DAY + 2 * HOUR  # two hours on: the raw rows are past raw retention, the rollups are not
    assert store.prune(HOUR, 4 * HOUR, later, stepped) == (180, 0)
    assert [p[0] for p in minute_stats(store, T0, T0 + 180)] == [T0, T0 + 60, T0 + 120]


def test_the_cut_follows_the_clock_again_once_rows_before_the_step_are_past_retention() -> None:
    steps = [(T0, DAY)]
    assert retention_cut(T0 + DAY + 60, HOUR, steps) == T0 + 60 - HOUR  # the clock's time before the step
    assert retention_cut(T0 + DAY + 2 * HOUR, HOUR, steps) == T0 + DAY + HOUR  # past the step: the clock's time
    assert retention_cut(T0 + DAY + 60, HOUR) == T0 + DAY + 60 - HOUR  # no step: as before


def test_a_rollup_mark_ahead_of_the_clock_is_brought_back_and_nothing_is_pruned_unrolled(tmp_path: Path) -> None:
    before = Store(tmp_path / "factory.db")
    before.write([sample(T0 + s) for s in range(60)])
    before.rollup(T0 + DAY)  # while the clock was a day ahead: the mark is a day ahead
    before.write([sample(T0 + 120 + s, power=300.0) for s in range(60)])  # the clock came back
    before.close()  # and the controller was restarted before its next rollup
    store = Store(tmp_path / "factory.db")
    assert store.rollup(T0 + 300) == 1  # the minute written since is rolled up, and the table is not re-read
    assert store.get_meta("rollup_upto_min") == str(int((T0 + 300) // 60) - 2)
    store.prune(60, DAY, T0 + 300)
    assert [(t, low, high) for t, low, high, _ in minute_stats(store, T0, T0 + 180)] == [
        (T0, 100.0, 100.0),
        (T0 + 120, 300.0, 300.0),
    ]


def test_rows_written_into_a_minute_already_rolled_up_are_rolled_up_again(store: Store) -> None:
    store.write([sample(T0 + s) for s in range(120)])
    store.rollup(T0 + 240)  # minutes 0 and 1 rolled up, their raw rows kept
    store.write([sample(T0 + 60.5 + s, power=400.0) for s in range(20)])  # the clock went back a little
    store.rollup(T0 + 300)
    assert minute_stats(store, T0 + 60, T0 + 120) == [(T0 + 60, 100.0, 400.0, 175.0)]  # 60 rows at 100, 20 at 400


def test_rows_written_into_a_minute_already_pruned_are_left_out_of_its_rollup_and_pruned(store: Store) -> None:
    """Its raw rows are gone, so its rollup is not recomputed from the late rows alone (nor merged, see docs)."""
    store.write([sample(T0 + s) for s in range(120)])
    store.rollup(T0 + 240)
    assert store.prune(60, DAY, T0 + 240) == (120, 0)  # minutes 0 and 1 are rollups only now
    store.write([sample(T0 + 60.5 + s, power=400.0) for s in range(20)])  # the clock went back 3 minutes
    store.rollup(T0 + 300)
    assert minute_stats(store, T0 + 60, T0 + 120) == [(T0 + 60, 100.0, 100.0, 100.0)]  # 60 rows, not the 20
    assert store.count_rows()["sample"] == 20  # deleted by retention only
    assert store.prune(60, DAY, T0 + 300) == (20, 0)  # as the rows past raw retention they are
    assert minute_stats(store, T0 + 60, T0 + 120) == [(T0 + 60, 100.0, 100.0, 100.0)]


def test_freshness_is_judged_by_when_samples_were_stored_not_by_their_nodes_clock(store: Store) -> None:
    store.write([sample(T0 + HOUR)], stored_at=T0)  # a node an hour ahead, stored at T0 on the writer's clock
    assert store.newest_sample_time() == T0 + HOUR
    assert store.samples_stored_at() == T0
