"""A window shorter than the sampling interval is billed from the readings around it, not 0 J.

At a 60 s interval `energy --since 1m` holds one reading or none, and energy billed 0 J with source `none`: it
needed two readings inside the window, for the counter and for power alike. Now the reading before the window is
held into it (with the readings around it giving the usual spacing, so a window inside a silence is not billed the
silence). A real SQLite store, written by `Store.write`, against the integral computed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0
WATTS = 500.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store(tmp_path / "factory.db")
    counter = [GpuSample("c1", 0, power_w=WATTS, energy_j=WATTS * 60 * k) for k in range(30)]
    opened.write([NodeSample("c1", T0 + 60 * k, gpus=(gpu,)) for k, gpu in enumerate(counter)])
    opened.write([NodeSample("p1", T0 + 60 * k, gpus=(GpuSample("p1", 0, power_w=WATTS),)) for k in range(30)])
    return opened


@pytest.mark.parametrize(("since", "until"), [(600, 660), (610, 670), (610, 650), (605, 606)])
def test_a_window_with_one_reading_or_none_bills_the_reading_held_into_it(
    store: Store, since: float, until: float
) -> None:
    found = {node: (joules, source) for node, _, joules, source in store.energy(["c1", "p1"], T0 + since, T0 + until)}
    expected = WATTS * (until - since)
    assert found["c1"] == (pytest.approx(expected), "power")
    assert found["p1"] == (pytest.approx(expected), "power")


def test_a_window_after_the_last_reading_bills_nothing(store: Store) -> None:
    found = store.energy(["c1", "p1"], T0 + 29 * 60 + 5, T0 + 29 * 60 + 50)
    assert [(joules, source) for _, _, joules, source in found] == [(0.0, "none"), (0.0, "none")]


def test_a_window_inside_a_silence_is_billed_only_the_usual_spacing(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    times = [0, 60, 120, 3600, 3660, 3720]  # silent from 120 s to 3600 s
    store.write([NodeSample("p1", T0 + t, gpus=(GpuSample("p1", 0, power_w=WATTS),)) for t in times])
    ((_, _, joules, source),) = store.energy(["p1"], T0 + 150, T0 + 1000)
    assert (joules, source) == (pytest.approx(WATTS * 30), "power")  # 120 s's reading held for 60 s: to 180 s
