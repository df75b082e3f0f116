"""A period without telemetry is no reading, not 0 J: in `power report`'s intervals and in `telemetry energy` alike.

Once a GPU's raw rows were pruned, every window after its rollups read as rollup 0 J (a minute before the window's
end was enough), and a window inside a silence of raw rows read as power 0 J: a node collected for one hour read
`intervals_without_telemetry` 0 over 24 hours, and `telemetry energy` over an hour with no sample said 0 kWh. The
store is real and small enough to bill by hand: n1's one GPU at 300 W, sampled every 5 s with its energy counter
for the first hour and the sixth of a day, and n3's idle at 0 W for the first hour (a reading of 0 J, which is
not none), kept raw or rolled up and pruned; hourly prices over the day.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.render import iso_utc
from factoryctl.model.energy_prices import priced
from factoryctl.model.telemetry import GpuSample, NodeSample, kwh_from_joules
from factoryctl.power.report import read_report
from factoryctl.store.energy_intervals import energy_by_interval
from factoryctl.store.sqlite import Store

HOUR = 3600.0
T0 = 1_699_999_200.0  # on the hour
WATTS = 300.0
BURSTS = (0, 5)  # the hours with samples
DAY = (T0, T0 + 24 * HOUR)
PRICES = [(T0 + h * HOUR, T0 + (h + 1) * HOUR, 40.0 + h) for h in range(24)]
#: By hand, each burst hour's joules: raw, the counter's steps (the one across the silence held 5 s, the last
#: reading counting nothing after it); rolled up, each minute's 300 W for the 60 s its samples covered.
BILLED = {"raw": (WATTS * 3600, WATTS * 3595), "pruned": (WATTS * 3600, WATTS * 3600)}
SILENT_RUNS = [(T0 + HOUR, T0 + 5 * HOUR), (T0 + 6 * HOUR, DAY[1])]


def _write(path: Path, state: str) -> None:
    """n1's two burst hours, n3's idle first hour (n2 known, never collected); `pruned`: rolled up, raw rows pruned."""
    store = Store(path)
    try:
        store.write([NodeSample("n2", T0 - 600.0, gpus=(GpuSample("n2", 0),))])
        times = [hour * 3600 + s for hour in BURSTS for s in range(0, 3600, 5)]
        counter = [WATTS * (t if t < 3600 else t - 4 * 3600 - 5) for t in times]  # nothing used while silent
        store.write(
            [
                NodeSample("n1", T0 + t, gpus=(GpuSample("n1", 0, power_w=WATTS, energy_j=joules),))
                for t, joules in zip(times, counter, strict=True)
            ]
        )
        idle = GpuSample("n3", 0, power_w=0.0, energy_j=0.0)
        store.write([NodeSample("n3", T0 + t, gpus=(idle,)) for t in range(0, 3600, 5)])
        if state == "pruned":
            store.rollup(now=DAY[1] + HOUR)
            store.prune(60, 30 * 86400, now=DAY[1] + HOUR)
            assert store.count_rows()["sample"] == 0
    finally:
        store.close()


@pytest.fixture(params=["raw", "pruned"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    (tmp_path / "state").mkdir()
    _write(tmp_path / "state" / "factory.db", request.param)
    opened = Store(tmp_path / "state" / "factory.db", readonly=True)
    yield request.param, opened
    opened.close()


def test_the_report_counts_each_hour_without_telemetry_and_bills_the_others_as_before(
    stored: tuple[str, Store],
) -> None:
    state, store = stored
    report = read_report(store, ["n1", "n2"], DAY, PRICES)
    n1, n2 = report.nodes
    assert n1.gaps == 22  # was 0 once pruned; raw, 18: the hours between the bursts read 0 J
    assert n1.gap_runs == SILENT_RUNS
    first, sixth = BILLED[state]
    assert n1.energy_kwh == kwh_from_joules([first, sixth])
    assert n1.priced_kwh == kwh_from_joules([first]) + kwh_from_joules([sixth])
    assert n1.cost == priced([(kwh_from_joules([first]), 40.0), (kwh_from_joules([sixth]), 45.0)])
    assert n1.mean_price_per_mwh == (40.0 + 45.0) / 2  # the prices of its hours with telemetry only
    assert (n2.energy_kwh, n2.gaps) == (None, 24)
    (n3,) = read_report(store, ["n3"], DAY, PRICES).nodes
    assert (n3.energy_kwh, n3.cost, n3.gaps) == (0.0, 0.0, 23)  # its idle hour is read: 0 kWh, not a gap


def test_every_window_without_a_sample_reads_no_reading_and_the_bursts_as_billed(stored: tuple[str, Store]) -> None:
    state, store = stored
    windows = [DAY, *((lo, hi) for lo, hi, _ in PRICES), (T0 + 2 * HOUR, T0 + 3 * HOUR)]
    read = {(node, gpu): billed for node, gpu, billed in energy_by_interval(store, ["n1"], windows)}
    source = "counter" if state == "raw" else "rollup"
    first, sixth = BILLED[state]
    by_hand = [
        (first + sixth, source),
        *((first if h == 0 else sixth if h == 5 else 0.0, source if h in BURSTS else "none") for h in range(24)),
        (0.0, "none"),
    ]
    idle = [(0.0, source), *((0.0, source if h == 0 else "none") for h in range(24)), (0.0, "none")]
    read.update(((node, gpu), billed) for node, gpu, billed in energy_by_interval(store, ["n3"], windows))
    assert (read["n1", 0], read["n3", 0]) == (by_hand, idle)
    for (lo, hi), billed, idled in zip(windows, by_hand, idle, strict=True):  # `telemetry energy`'s: the same
        assert store.energy(["n1", "n3"], lo, hi) == [("n1", 0, *billed), ("n3", 0, *idled)], (lo, hi)


@pytest.fixture
def factory(stored: tuple[str, Store], tmp_path: Path) -> Path:
    """factory.yaml of n1 and n2 over the stored store, with the hourly prices as a CSV file."""
    rows = "".join(f"{iso_utc(lo)},{price}\n" for lo, _, price in PRICES)
    (tmp_path / "prices.csv").write_text("timestamp_utc,price_per_mwh\n" + rows)
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local}}\n"
        "power:\n  price_source: csv\n  prices: prices.csv\n"
    )
    return config


def test_the_report_says_which_hours_have_no_telemetry(cli: Any, factory: Path) -> None:
    window = ("--since", iso_utc(DAY[0]), "--until", iso_utc(DAY[1]))
    result = cli("-c", str(factory), "power", "report", "n1", *window, "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert n1["intervals_without_telemetry"] == 22
    silent = ", ".join(f"from {iso_utc(lo)} to {iso_utc(hi)}" for lo, hi in SILENT_RUNS)
    assert result.stderr == (
        "factoryctl: warning: n1 has no telemetry for 22 of the period's 24 price intervals: energy and cost count"
        f" the others only (no telemetry {silent}).\n"
    )


def test_telemetry_energy_of_an_hour_without_telemetry_is_unknown_not_0(cli: Any, factory: Path) -> None:
    window = ("--since", iso_utc(T0 + 2 * HOUR), "--until", iso_utc(T0 + 3 * HOUR))
    result = cli("-c", str(factory), "telemetry", "energy", "n1", *window, "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert (n1["energy_kwh"], n1["source"]) == (None, "none")  # was 0.0 from "rollup" (pruned) or "power" (raw)
    assert "no stored energy reading for n1 " in result.stderr
    assert "its energy is unknown, not 0" in result.stderr
