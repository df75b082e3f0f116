"""`telemetry history` over a window reaching past the raw window: its summary counts every sample once.

Older history is kept as 1-minute rollups, newer as raw rows. The table's mean and trend counted one rolled-up
minute as one point against 60 raw seconds, points without `--step` lost the minute's min and max, and a rollup
of a slow-tier metric (temperature, on one row in five) weighted its minute by every row, not by its readings.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.history import CountedPoint
from factoryctl.store.schema import MIGRATIONS, SCHEMA_VERSION
from factoryctl.store.sqlite import Store

HOUR = 3600


def configured(tmp_path: Path) -> tuple[Path, Store]:
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {state}\nnodes:\n  c1: {{transport: local}}\n")
    return config, Store(state / "factory.db")


def rolled_and_raw(tmp_path: Path) -> Path:
    """c1 at 1 Hz for an hour from 6.5 h ago: 30 min at 100 W and 50 °C (rolled up, raw pruned), then 30 min at
    500 W and 80 °C (raw); temperature on every 5th sample (the slow tier), as the controller stores it."""
    config, store = configured(tmp_path)
    now = time.time()
    start = int(now - 6.5 * HOUR) // 60 * 60
    cut = int(now - 6 * HOUR) // 60 * 60
    samples = [
        NodeSample(
            "c1",
            t,
            gpus=(GpuSample("c1", 0, power_w=100.0 if t < cut else 500.0, temperature_c=50.0 if t < cut else 80.0),),
        )
        for t in range(start, start + HOUR)
    ]
    store.write(samples, [t % 5 == 0 for t in range(start, start + HOUR)])
    store.rollup(now=now)
    store.prune(6 * HOUR, 30 * 86400, now=now)
    assert store.count_rows()["sample"] == 1800  # the first half pruned, its 30 minutes rolled up
    store.close()
    return config


def summary(cli: Callable[..., Any], config: Path, *args: str) -> dict[str, str]:
    result = cli("--config", str(config), "telemetry", "history", "c1", "--since", "8h", "-o", "csv", *args)
    assert result.exit_code == 0, result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    return dict(row)


def test_the_mean_and_trend_weight_a_rolled_up_minute_as_its_samples(tmp_path: Path, cli: Callable[..., Any]) -> None:
    config = rolled_and_raw(tmp_path)
    row = summary(cli, config)
    assert (row["points"], row["min"], row["max"]) == ("1830", "100.0", "500.0")
    assert float(row["mean"]) == pytest.approx(300.0)  # was 493: 30 minutes counted as 30 seconds
    trend = row["trend"]
    low, high = trend.count(trend[0]), trend.count(trend[-1])
    assert trend[0] != trend[-1]
    assert low + high == len(trend)
    assert abs(low - high) <= 2, trend  # half the hour at each power: about half the line each


def test_points_without_step_keep_the_minutes_min_and_max(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """Power alternating 100 W / 500 W every second, 8 h ago (all rolled up): each minute's mean is 300."""
    config, store = configured(tmp_path)
    t0 = (int(time.time()) // HOUR - 8) * HOUR
    store.write(
        [NodeSample("c1", t0 + i, gpus=(GpuSample("c1", 0, power_w=100.0 if i % 2 else 500.0),)) for i in range(HOUR)]
    )
    store.rollup()
    store.prune(6 * HOUR, 30 * 86400)
    ((point, *_),) = [s.points for s in store.history(["c1"], "power_w", t0 - 60, t0 + HOUR)]
    store.close()
    assert point == CountedPoint(t0, 300.0, 100.0, 500.0, 60)
    result = cli("--config", str(config), "telemetry", "history", "c1", "--since", "24h", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["min"], row["mean"], row["max"]) == ("100.0", "300.0", "500.0")  # was 300, 300, 300


def test_a_slow_tier_minute_weighs_its_own_readings(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """30 min at 50 °C (rolled up) and 30 at 80 °C (raw), read every 5 s: 12 readings a minute on both sides."""
    config = rolled_and_raw(tmp_path)
    result = cli(
        "--config", str(config), "telemetry", "history", "c1", "-m", "temperature_c", "--since", "8h",
        "--step", "7d", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ((point,),) = [item["points"] for item in json.loads(result.stdout)["items"]]
    assert (point["value"], point["min"], point["max"]) == (pytest.approx(65.0), 50, 80)  # was 55.0
    row = summary(cli, config, "-m", "temperature_c")
    assert float(row["mean"]) == pytest.approx(65.0)


def schema_1_store(tmp_path: Path, low_w: int, mean_w: int, high_w: int) -> Path:
    """A store as factoryctl wrote it before schema 2: c1/0's minute 1000 rolled up from 60 rows, no per-metric counts."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO node (id, name) VALUES (1, 'c1')")
    db.execute("INSERT INTO gpu (node_id, idx) VALUES (1, 0)")
    db.execute(
        "INSERT INTO rollup (node_id, gpu, t_min, n, power_mw_min, power_mw_mean, power_mw_max)"
        " VALUES (1, 0, 1000, 60, ?, ?, ?)",
        (low_w * 1000, mean_w * 1000, high_w * 1000),
    )
    db.commit()
    db.close()
    return path


def test_a_store_of_schema_1_opens_and_its_old_rollups_weigh_all_their_rows(tmp_path: Path) -> None:
    """Rollups made before the per-metric counts have none: they are weighted by the minute's rows, as before."""
    path = schema_1_store(tmp_path, 100, 100, 100)
    store = Store(path)
    ((old,),) = [s.points for s in store.history(["c1"], "power_w", 0, 2000 * 60)]
    assert old == CountedPoint(60_000, 100.0, 100.0, 100.0, 60)
    six = [
        NodeSample("c1", 1010 * 60 + i, gpus=(GpuSample("c1", 0, power_w=300.0, temperature_c=70.0),)) for i in range(6)
    ]
    store.write(six, [i % 2 == 0 for i in range(6)])  # temperature on 3 rows of 6
    store.rollup(now=1020 * 60)
    store.prune(60, 30 * 86400, now=1020 * 60)
    points = [s.points for s in store.history(["c1"], "temperature_c", 0, 2000 * 60)]
    store.close()
    assert points == [[CountedPoint(1010 * 60, 70, 70, 70, 3)]]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_reader_reads_a_store_of_schema_1_without_migrating_it(tmp_path: Path) -> None:
    """A read-only command on a store an older controller still writes: answered, the schema left as it is."""
    path = schema_1_store(tmp_path, 100, 200, 300)
    store = Store(path, readonly=True)
    ((old,),) = [s.points for s in store.history(["c1"], "power_w", 0, 2000 * 60)]
    store.close()
    assert old == CountedPoint(60_000, 200.0, 100.0, 300.0, 60)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


def test_the_minute_of_the_oldest_raw_row_is_not_counted_twice(tmp_path: Path) -> None:
    """A young store's first minute has its rollup and its raw rows: both came back, so it weighed double."""
    _, store = configured(tmp_path)
    now = time.time()
    minute = int(now - 2 * HOUR) // 60 * 60
    samples = [  # the controller started 30 s into the minute
        NodeSample("c1", t, gpus=(GpuSample("c1", 0, power_w=100.0 if t < minute + 60 else 500.0),))
        for t in range(minute + 30, minute + 120)
    ]
    store.write(samples, [True] * 90)
    store.rollup(now=now)  # both minutes rolled up; their raw rows stay (none is past the retention)
    ((points,),) = [[s.points for s in store.history(["c1"], "power_w", minute - 60, minute + 180)]]
    store.close()
    assert sum(p.samples for p in points) == 90  # each raw row once (was 30 more: the first minute's rollup)
    assert points[0] == CountedPoint(minute + 30, 100.0, 100.0, 100.0, 1)
