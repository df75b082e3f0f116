"""`telemetry history` at scale: buckets summed by SQLite, the point limit with `--step`, the summary's columns.

A week of a 256-GPU fleet was read row by row into Python to be bucketed (12 s, 4 GB with `--step 1m`), `--step`
skipped the 1,000,000-point limit, a mid-minute `--since` returned the whole minute before it, and a summarised
table's POINTS, LAST and TO were its buckets' count, mean and start.
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli import telemetry_history
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.history import CountedPoint
from factoryctl.store.history_buckets import python_bucketed
from factoryctl.store.sqlite import Store

HOUR = 3600


def _random_store(path: Path, seed: int) -> tuple[Store, float, float]:
    """Two GPUs, 3 h at random 1-7 s spacing and random power (some missing), the older 2 h rolled up and pruned.

    Returns the store and the first and last sample's time; the raw rows start mid-minute (the seam).
    """
    rng = random.Random(seed)
    store = Store(path)
    now = time.time()
    t = float(int(now - 3 * HOUR))
    samples, slow = [], []
    while t < now - 60:
        gpus = tuple(
            GpuSample("r1", i, power_w=None if rng.random() < 0.05 else rng.uniform(80, 700), temperature_c=50.0 + i)
            for i in range(2)
        )
        samples.append(NodeSample("r1", t + rng.choice((0.0, 0.25, 0.5)), gpus=gpus))
        slow.append(rng.random() < 0.3)
        t += rng.randint(1, 7)
    store.write(samples, slow)
    store.rollup(now=now)
    store.prune(HOUR - 17, 30 * 86400, now=now)  # raw rows kept from a mid-minute time
    return store, samples[0].time, samples[-1].time


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("metric", ["power_w", "temperature_c"])
def test_sql_buckets_equal_python_buckets_of_the_same_rows(tmp_path: Path, seed: int, metric: str) -> None:
    store, first, last = _random_store(tmp_path / "f.db", seed)
    rng = random.Random(seed)
    for step in (1, 7, 60, 90, 300, 3600, 86400):
        since = rng.uniform(first - 120, first + 1800)
        until = rng.uniform(last - 600, last + 60) if rng.random() < 0.5 else last + 60
        (sql,) = store.history(["r1"], metric, since, until, step=step, gpus=[0])
        (plain,) = store.history(["r1"], metric, since, until, gpus=[0])
        rows = [(p.time, p.value, p.min, p.max, p.samples) for p in plain.points if isinstance(p, CountedPoint)]
        expected = [CountedPoint(*row) for row in python_bucketed(rows, step)]
        assert [(p.time, p.min, p.max, getattr(p, "samples", None)) for p in sql.points] == [
            (p.time, p.min, p.max, getattr(p, "samples", None)) for p in expected
        ], step
        assert [p.value for p in sql.points] == pytest.approx([p.value for p in expected], rel=1e-12), step
        assert sql.points
        assert isinstance(sql.points[0], CountedPoint)
    store.close()


def test_a_fractional_step_is_still_bucketed(tmp_path: Path) -> None:
    store, first, last = _random_store(tmp_path / "f.db", 4)
    (series,) = store.history(["r1"], "power_w", first, last + 1, step=2.5, gpus=[1])
    assert all(p.time % 2.5 == 0 for p in series.points)
    assert sum(p.samples for p in series.points if isinstance(p, CountedPoint)) > 0
    store.close()


def test_no_point_is_before_a_mid_minute_since_in_the_rolled_up_range(tmp_path: Path) -> None:
    store, first, _ = _random_store(tmp_path / "f.db", 5)
    since = (first // 60 + 3) * 60 + 30  # inside the rollup range, half a minute in
    (series,) = store.history(["r1"], "power_w", since, since + 600, gpus=[0])
    assert series.points[0].time >= since  # was the minute starting 30 s before it
    assert store.history_size(["r1"], "power_w", since, since + 600, gpus=[0]) == len(series.points)
    store.close()


def _configured(tmp_path: Path) -> Path:
    store, _, _ = _random_store(tmp_path / "state" / "factory.db", 6)
    store.close()
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes:\n  r1: {{transport: local}}\n")
    return config


def test_step_is_bounded_and_the_hint_names_a_step_that_fits(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _configured(tmp_path)
    monkeypatch.setattr(telemetry_history, "MAX_HISTORY_POINTS", 200)  # 2 GPUs x 3 h: 1-minute buckets are 360
    history = ("--config", str(config), "telemetry", "history", "r1", "--since", "4h", "-o", "json")
    refused = cli(*history, "--step", "1m")
    assert refused.exit_code == 2, refused.stdout  # was every bucket, past the limit
    assert "(at most 200 with --step 1m)." in refused.stderr
    assert "--step 2m or wider" in refused.stderr, refused.stderr
    assert "--step 2m or wider" in cli(*history).stderr  # without --step: the same step that fits
    assert cli(*history, "--step", "2m").exit_code == 0
    table = cli(*history[:-2], "--step", "1m")  # a table keeps to the step, as narrow as fits (it took 1 h buckets)
    assert table.exit_code == 0, table.stderr
    said = re.search(r"--step 1m would give (\d+) points: summarised in 2m buckets instead\.", table.stderr)
    assert said is not None, table.stderr
    assert int(said.group(1)) > 200  # about 360: 2 GPUs x 3 h of minutes, as the window's edges fall


def test_a_summarised_table_counts_the_stored_points(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _configured(tmp_path)
    history = ("--config", str(config), "telemetry", "history", "r1/0", "--since", "4h", "-o", "csv")
    whole = cli(*history)
    (plain,) = csv.DictReader(io.StringIO(whole.stdout))
    monkeypatch.setattr(telemetry_history, "MAX_HISTORY_POINTS", 100)
    summarised = cli(*history)
    assert "summarised in" in summarised.stderr
    (row,) = csv.DictReader(io.StringIO(summarised.stdout))
    for key in ("points", "from", "to", "last", "min", "max"):  # were buckets' count, start and mean
        assert row[key] == plain[key], key
    assert float(row["mean"]) == pytest.approx(float(plain["mean"]))
    (stepped,) = csv.DictReader(io.StringIO(cli(*history, "--step", "1h").stdout))
    assert (stepped["points"], stepped["last"], stepped["to"]) == (plain["points"], plain["last"], plain["to"])
