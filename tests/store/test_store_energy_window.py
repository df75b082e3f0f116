"""Energy and history from 1-minute rollups (older than the raw window) bill the window asked for, at the rate drawn.

A GPU draws a constant 500 W for 12 hours, its energy counter rising to match; the store keeps 6 hours of raw rows,
as the controller's maintenance leaves it (rollup, then prune, after each sample). Whatever the window and however
often the GPU was sampled, its energy is 500 W times the window's length.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
HOUR = 3600.0
WATTS = 500.0


def filled(tmp_path: Path, every_s: int) -> Store:
    store = Store(tmp_path / f"every{every_s}.db")
    for step in range(int(12 * HOUR) // every_s + 1):
        t = T0 + step * every_s
        store.write([NodeSample("e1", t, gpus=(GpuSample("e1", 0, power_w=WATTS, energy_j=WATTS * step * every_s),))])
        store.rollup(now=t + 0.001)
        store.prune(raw_retention_s=6 * HOUR, rollup_retention_s=30 * 86400, now=t + 0.001)
    return store


def kwh(store: Store, since_h: float, until_h: float) -> tuple[float, str]:
    ((_, _, joules, source),) = store.energy(["e1"], T0 + since_h * HOUR, T0 + until_h * HOUR)
    return joules / 3.6e6, source


@pytest.mark.parametrize("every_s", [60, 300])
def test_an_old_window_bills_its_own_hours_at_the_rate_drawn(tmp_path: Path, every_s: int) -> None:
    store = filled(tmp_path, every_s)
    assert kwh(store, 1, 3) == (pytest.approx(1.0, rel=0.002), "rollup")  # --until before the raw window
    assert kwh(store, 4, 5) == (pytest.approx(0.5, rel=0.002), "rollup")
    assert kwh(store, 0, 12) == (pytest.approx(6.0, rel=0.002), "rollup+counter")
    assert kwh(store, 7, 12)[0] == pytest.approx(2.5, rel=0.002)  # raw rows only: the counter
    two_past = 2 / 60  # windows that start and end between two samples: the steps across their edges are shared
    assert kwh(store, 4 + two_past, 5 + two_past)[0] == pytest.approx(0.5, rel=0.002)
    assert kwh(store, 8 + two_past, 9 + two_past)[0] == pytest.approx(0.5, rel=0.002)


def test_a_gpu_switched_off_is_not_billed_for_the_gap(tmp_path: Path) -> None:
    """The last minute before a long silence counts for the usual spacing of the samples, not the whole gap."""
    store = Store(tmp_path / "gap.db")
    for minute in [*range(0, 60), *range(180, 240)]:  # an hour, two hours off, an hour
        store.write([NodeSample("e1", T0 + minute * 60, gpus=(GpuSample("e1", 0, power_w=WATTS),))])
    store.rollup(now=T0 + 5 * HOUR)
    store.prune(raw_retention_s=1, rollup_retention_s=30 * 86400, now=T0 + 5 * HOUR)
    assert kwh(store, 0, 5) == (pytest.approx(1.0, rel=0.02), "rollup")


def test_history_of_an_old_window_ends_at_until(tmp_path: Path) -> None:
    store = filled(tmp_path, 60)
    (series,) = store.history(["e1"], "power_w", T0 + 1 * HOUR, T0 + 2 * HOUR)
    times = [point.time for point in series.points]
    assert len(times) == 60
    assert min(times) >= T0 + 1 * HOUR
    assert max(times) < T0 + 2 * HOUR


def test_a_nodes_energy_source_names_every_part_once_joined_with_plus() -> None:
    """docs/telemetry.md: `rollup+counter`, never `counter,power` (a comma a CSV would have to quote)."""
    from factoryctl.cli.telemetry_history import node_energy_source

    assert node_energy_source(["counter", "power"]) == "counter+power"
    assert node_energy_source(["rollup+counter", "counter", "rollup+power"]) == "rollup+counter+power"
    assert node_energy_source(["none", "none"]) == "none"
