"""Raw samples are kept long enough for a rollup's covered time to be settled, whatever `raw_retention` says.

A minute rolled up before its next sample arrived (an interval over two minutes) is settled by a later rollup from its
raw rows and the two samples before it. With `interval_s: 300` and `raw_retention: 5m` the controller pruned those
rows first, each minute kept its first guess, and the run's energy came out a fifth of what it drew. Retention is
now at least two intervals and three minutes (`raw_kept_s`). A real SQLite store, rolled up and pruned every minute
at :30 with the retention the controller uses, against the integral computed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.config_schema import ControllerSettings
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
WATTS = 500.0


def settings(tmp_path: Path, interval_s: float, raw_retention: str) -> ControllerSettings:
    yaml = (
        f"name: t\ncontroller: {{interval_s: {interval_s}, raw_retention: {raw_retention}}}\n"
        "nodes:\n  p1: {transport: local, sim: h100-sxm}\n"
    )
    return parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state").settings.controller


def test_the_raw_retention_is_stretched_only_when_shorter_than_settling_needs(tmp_path: Path) -> None:
    assert settings(tmp_path, 300, "5m").raw_kept_s == 2 * 300 + 180
    assert settings(tmp_path, 1.0, "6h").raw_kept_s == 6 * 3600


@pytest.mark.parametrize(("interval_s", "raw_retention"), [(300, "5m"), (600, "10m"), (3600, "1h")])
def test_a_run_at_long_intervals_bills_what_it_drew_once_pruned(
    tmp_path: Path, interval_s: int, raw_retention: str
) -> None:
    kept_s = settings(tmp_path, interval_s, raw_retention).raw_kept_s
    offsets = [interval_s * (k + 1) for k in range(8 * 3600 // interval_s)]  # on the interval's multiples
    pending = [NodeSample("p1", T0 + t, gpus=(GpuSample("p1", 0, power_w=WATTS),)) for t in offsets]
    store = Store(tmp_path / "factory.db")
    for minute in range(offsets[-1] // 60 + 2):  # what the controller does every minute, at :30
        now = T0 + minute * 60 + 30
        store.write([s for s in pending if s.time <= now])
        pending = [s for s in pending if s.time > now]
        store.rollup(now=now)
        store.prune(raw_retention_s=kept_s, rollup_retention_s=30 * 86400, now=now)
    done = T0 + offsets[-1] + 7200
    store.rollup(now=done)
    store.prune(raw_retention_s=kept_s, rollup_retention_s=30 * 86400, now=done)  # every raw row gone
    start, end = offsets[0] // 60 * 60, offsets[-1] // 60 * 60
    ((_, _, joules, source),) = store.energy(["p1"], T0 + start, T0 + end)
    assert source == "rollup"
    assert joules == pytest.approx(WATTS * (end - start))  # each reading held until the next: no silence here
