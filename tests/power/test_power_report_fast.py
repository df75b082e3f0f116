"""`power report` reads each GPU's rows once for all its price intervals: each interval's joules must be, to the bit,
what `store.energy` over that interval alone gives, and the report what pricing those reads gave.

The store is real and awkward on purpose: a GPU's counter reset by a reboot (in the raw rows and in the rolled-up
part), a 20-minute silence, a GPU without an energy counter (power integrated), a node sampled once a minute from
mid-minute, raw rows pruned so the rollups bill the start and the seam has its lead-in, and (second case) rollups
made before schema 4, whose time covered is unknown (inferred from the sample counts by the gap rule).
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from factoryctl.model.energy_prices import priced
from factoryctl.model.telemetry import GpuSample, NodeSample, kwh_from_joules
from factoryctl.power.report import read_report
from factoryctl.store.energy_intervals import energy_by_interval
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # on the minute
END = T0 + 3 * 3600
NAMES = ["n1", "n2", "n3"]  # n3: never collected


def _gpu(node: str, index: int, t: float, energy: float | None) -> GpuSample:
    watts = 200.0 + (int(t) // 60 * 37 + index * 50) % 300
    return GpuSample(node, index, power_w=watts, energy_j=energy, power_limit_w=700.0, power_limit_default_w=700.0)


def _fill(store: Store) -> None:
    """n1: GPU 0 with a counter (reset at 40 min and at 2 h 30), GPU 1 power only, every 5 s from :31, silent from
    1 h to 1 h 20; n2: one GPU with a counter, once a minute at :17 for the last 2 hours (and two more)."""
    samples, counter = [], 5.0e9
    t = T0 + 31
    while t < END:
        if not T0 + 3600 <= t < T0 + 4800:
            if T0 + 2400 <= t < T0 + 2405 or T0 + 9000 <= t < T0 + 9005:
                counter = 900.0  # a reboot: the counter starts again from zero
            gpus = (_gpu("n1", 0, t, counter), _gpu("n1", 1, t, None))
            samples.append(NodeSample("n1", t, gpus=gpus))
            counter += gpus[0].power_w * 5 if gpus[0].power_w else 0
        t += 5
    store.write(samples)
    # n2's spacing is uneven around T0 + 9600 (10 s, 60 s, 20 s): the readings before a window judge its gaps too
    times = sorted([*range(int(END) - 7200 + 17, int(END), 60), int(T0) + 9547, int(T0) + 9637])
    store.write([NodeSample("n2", s, gpus=(_gpu("n2", 0, s, 1e6 + s),)) for s in times])
    store.rollup(now=END + 600)
    store.prune(raw_retention_s=3600, rollup_retention_s=30 * 86400, now=END + 600, steps=[])


def _store(tmp_path: Path, covered_unknown: bool) -> Path:
    path = tmp_path / "factory.db"
    store = Store(path)
    try:
        _fill(store)
    finally:
        store.close()
    if covered_unknown:  # rollups made before schema 4: their time covered inferred from the counts
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE rollup SET power_covered_ms = NULL WHERE t_min < ?", (int(T0 + 5400) // 60,))
        db.close()
    return path


def _windows() -> list[tuple[float, float]]:
    """Quarter hours over the data and past its end, odd windows across every edge, and the whole period."""
    quarters = [(T0 - 900 + k * 900, T0 + k * 900) for k in range(15)]
    odd = [(T0 + 13.5 + k * 421, T0 + 13.5 + (k + 1) * 421) for k in range(27)]
    return [(T0 - 900, END + 900), *quarters, *odd, *_raw_windows()]


def _raw_windows() -> list[tuple[float, float]]:
    """Windows in the raw rows only, the first and the last shorter than the spacing (the readings around them)."""
    short = [(T0 + 9601.25 + k * 3, T0 + 9604.25 + k * 3) for k in range(4)]
    return [*short, (T0 + 9613.25, T0 + 10200), (T0 + 10200, T0 + 10202.5)]


@pytest.mark.parametrize(
    ("covered_unknown", "windows"),
    [(False, _windows()), (True, _windows()), (False, _raw_windows())],
    ids=["covered", "schema3-rollups", "raw-only"],
)
def test_each_interval_is_what_energy_reads_over_it(
    tmp_path: Path, covered_unknown: bool, windows: list[tuple[float, float]]
) -> None:
    store = Store(_store(tmp_path, covered_unknown), readonly=True)
    try:
        fast = {(name, gpu): billed for name, gpu, billed in energy_by_interval(store, NAMES, windows)}
        slow: dict[tuple[str, int], list[tuple[float, str]]] = {}
        for lo, hi in windows:
            for name, gpu, joules, source in store.energy(NAMES, lo, hi):
                slow.setdefault((name, gpu), []).append((joules, source))
    finally:
        store.close()
    assert list(fast) == [("n1", 0), ("n1", 1), ("n2", 0)]
    sources = {source for billed in slow.values() for _, source in billed}
    if len(windows) > len(_raw_windows()):  # every path read
        assert {"rollup", "counter", "power", "rollup+counter", "rollup+power", "none"} <= sources
    for key, billed in slow.items():
        for window, expected, got in zip(windows, billed, fast[key], strict=True):
            assert got == expected, (key, window)
            assert math.copysign(1, got[0]) == math.copysign(1, expected[0])


def test_report_prices_each_interval_as_reading_it_alone(tmp_path: Path) -> None:
    prices = [(T0 - 900 + k * 900, T0 + k * 900, 40.0 + 7 * k) for k in range(14)]  # the period's quarters
    told: list[tuple[int, int]] = []
    store = Store(_store(tmp_path, covered_unknown=False), readonly=True)
    try:
        report = read_report(store, NAMES, (T0 - 900, END + 900), prices, lambda done, of: told.append((done, of)))
        whole = store.energy(NAMES, T0 - 900, END + 900)
        per_interval = [store.energy(NAMES, lo, hi) for lo, hi, _ in prices]
    finally:
        store.close()
    assert told[0] == (0, 14)
    assert all(of == 14 and 0 <= done < 14 for done, of in told)
    for node in report.nodes:
        joules = [j for name, _, j, source in whole if name == node.node and source != "none"]
        assert node.energy_kwh == (kwh_from_joules(joules) if joules else None)
        parts = []
        for read, (_, _, price) in zip(per_interval, prices, strict=True):
            mine = [j for name, _, j, source in read if name == node.node and source != "none"]
            if mine:
                parts.append((kwh_from_joules(mine), price))
        assert node.gaps == len(prices) - len(parts)
        assert node.priced_kwh == math.fsum(kwh for kwh, _ in parts)
        assert node.cost == (priced(parts) if node.energy_kwh is not None else None)
    # n1: the quarter before its first sample and the one its silence fills; n3 is never read
    assert (report.nodes[0].gaps, report.nodes[2].gaps) == (2, 14)
