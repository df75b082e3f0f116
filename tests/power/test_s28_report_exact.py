"""Rollups are billed exactly, in mW x ms: `telemetry energy`'s read and `power report`'s agree to the bit.

A month's report sums its price intervals' rollup minutes in SQLite, so the rule both reads follow must not depend
on the order of the additions: each minute is held from its start for its time covered, up to the next minute with
power at most (the last: to the window's end), and what of that falls in a window is its mean power times that time,
summed in integers and divided once. The store is real and small enough to bill by hand (below): a controller's
minutes with fractional joules and a silence; a cron sweep's, one every 5 minutes held across price intervals'
edges, one held within its minute and one held longer than the 5 minutes to the next; a period whose edges cut
minutes; price intervals of 15, 30 and 5 minutes; a node never collected.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.model.energy_prices import priced
from factoryctl.model.telemetry import GpuSample, NodeSample, kwh_from_joules
from factoryctl.power.report import read_report
from factoryctl.store.energy_intervals import energy_by_interval
from factoryctl.store.sqlite import Store

T0 = 1_700_000_100  # on a quarter hour
MINUTES = 180
START, END = T0 + 37.5, T0 + MINUTES * 60 - 10.0  # the period: its edges cut a minute each
#: (start minute, mW, time covered ms) of n1's GPUs: 0 a controller's (silent from minute 100 to 120), 1 a cron's
ROLLUPS = {
    0: [(k, 300_001 + 7 * k, 60_000 - (k % 7) * 1_003) for k in range(MINUTES) if not 100 <= k < 120],
    1: [(k, 250_003 + 11 * k, {42: 30_000, 77: 400_000}.get(k, 300_000)) for k in range(2, MINUTES, 5)],
}
#: (start, end, price per MWh): quarter hours, then half an hour, then 5 minutes at a time, then quarter hours again
PRICES = [
    *((T0 + q * 900.0, T0 + (q + 1) * 900.0, 40.0 + 3 * q) for q in range(4)),
    (T0 + 3600.0, T0 + 5400.0, 120.0),
    *((T0 + 5400.0 + f * 300, T0 + 5700.0 + f * 300, 60.0 + f) for f in range(3)),
    *((T0 + 6300.0 + q * 900, T0 + 7200.0 + q * 900, 55.0 - q) for q in range(5)),
]


def _held(gpu: int) -> list[tuple[int, int, int]]:
    """GPU `gpu`'s minutes as held spans: (start ms, end ms, mW), each up to the next minute at most."""
    rows = ROLLUPS[gpu]
    nexts = [row[0] * 60_000 for row in rows[1:]] + [2**62]
    return [
        (T0 * 1000 + k * 60_000, T0 * 1000 + min(k * 60_000 + covered, following), mw)
        for (k, mw, covered), following in zip(rows, nexts, strict=True)
    ]


def _joules(gpu: int, lo: float, hi: float) -> float:
    """By hand: the mW x ms of each held span inside [lo, hi) s, summed exactly, in joules."""
    lo_ms, hi_ms = round(lo * 1000), round(hi * 1000)
    microjoules = sum(mw * max(0, min(end, hi_ms) - max(start, lo_ms)) for start, end, mw in _held(gpu))
    return microjoules / 1_000_000


def _billed(gpu: int, lo: float, hi: float) -> tuple[float, str]:
    """By hand: (joules, "rollup"), or (0.0, "none") where no held span reaches into [lo, hi) s (GPU 0's silence)."""
    lo_ms, hi_ms = round(lo * 1000), round(hi * 1000)
    held = any(min(end, hi_ms) > max(start, lo_ms) for start, end, _ in _held(gpu))
    return (_joules(gpu, lo, hi), "rollup") if held else (0.0, "none")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """n1 (2 GPUs) with the rollups of `ROLLUPS` and no raw row; n2 known, never collected."""
    path = tmp_path / "factory.db"
    writer = Store(path)
    try:
        for node, gpus in (("n1", 2), ("n2", 1)):
            writer.write([NodeSample(node, T0 - 600.0, gpus=tuple(GpuSample(node, g) for g in range(gpus)))])
    finally:
        writer.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM sample")
        (node_id,) = db.execute("SELECT id FROM node WHERE name = 'n1'").fetchone()
        db.executemany(
            "INSERT INTO rollup (node_id, gpu, t_min, n, power_mw_mean, power_mw_n, power_covered_ms)"
            " VALUES (?, ?, ?, 1, ?, 1, ?)",
            [(node_id, gpu, T0 // 60 + k, mw, covered) for gpu, rows in ROLLUPS.items() for k, mw, covered in rows],
        )
    db.close()
    opened = Store(path, readonly=True)
    yield opened
    opened.close()


def test_telemetry_energy_bills_rollups_exactly(store: Store) -> None:
    windows = [(START, END), *((max(START, lo), min(END, hi)) for lo, hi, _ in PRICES), (T0 + 812.25, T0 + 1203.5)]
    for lo, hi in windows:
        billed = {(node, gpu): (joules, source) for node, gpu, joules, source in store.energy(["n1", "n2"], lo, hi)}
        assert billed == {
            ("n1", 0): _billed(0, lo, hi),
            ("n1", 1): _billed(1, lo, hi),
            ("n2", 0): (0.0, "none"),
        }, (lo, hi)


def test_the_report_reads_each_interval_as_billed_by_hand(store: Store) -> None:
    parts = [(max(START, lo), min(END, hi), price) for lo, hi, price in PRICES]
    windows = [(START, END), *((lo, hi) for lo, hi, _ in parts)]
    read = {(node, gpu): billed for node, gpu, billed in energy_by_interval(store, ["n1", "n2"], windows)}
    for gpu in (0, 1):
        assert read["n1", gpu] == [_billed(gpu, lo, hi) for lo, hi in windows]
    assert read["n2", 0] == [(0.0, "none")] * len(windows)

    report = read_report(store, ["n1", "n2"], (START, END), PRICES)
    n1, n2 = report.nodes
    assert n1.energy_kwh == kwh_from_joules([_joules(0, START, END), _joules(1, START, END)])
    by_interval = [(kwh_from_joules([_joules(0, lo, hi), _joules(1, lo, hi)]), price) for lo, hi, price in parts]
    assert n1.cost == priced(by_interval)
    assert (n1.gpus, n1.gaps, report.intervals, report.no_cost) == (2, 0, len(PRICES), None)
    assert (n2.energy_kwh, n2.cost, n2.gaps) == (None, None, len(PRICES))
