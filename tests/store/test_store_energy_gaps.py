"""Energy across a silence: every source (counter, raw power, rollups) follows one gap rule.

A GPU without an energy counter was billed from raw power by holding each reading until the next: the reading
before two hours off billed the two hours (1.017 kWh where a GPU with a counter, drawing the same, read 0.017).
A GPU lost all window (rows with no power) was reported as source `power` with 0 J.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0  # a minute boundary
WATTS = 500.0
ON = 600  # seconds on, each side of the silence
OFF = 7200


def two_bursts(path: Path) -> Store:
    """p1 (no energy counter) and c1 (counter) at 500 W: 10 minutes on, two hours without samples, 10 minutes on."""
    store = Store(path)
    samples = []
    for second in [*range(ON), *range(ON + OFF, 2 * ON + OFF)]:
        used = WATTS * (second if second < ON else second - OFF)  # the counter: nothing used while off
        samples.append(NodeSample("p1", T0 + second, gpus=(GpuSample("p1", 0, power_w=WATTS),)))
        samples.append(NodeSample("c1", T0 + second, gpus=(GpuSample("c1", 0, power_w=WATTS, energy_j=used),)))
    store.write(samples)
    return store


def joules(store: Store, since: float, until: float) -> dict[str, tuple[float, str]]:
    return {node: (j, source) for node, _, j, source in store.energy(["p1", "c1"], since, until)}


def test_a_gpu_without_a_counter_is_not_billed_for_the_silence(tmp_path: Path) -> None:
    store = two_bursts(tmp_path / "gap.db")
    truth = WATTS * 2 * ON  # 600 kJ, 0.167 kWh
    found = joules(store, T0 - 3600, T0 + 3 * 3600)
    assert found["p1"] == (pytest.approx(truth, rel=0.01), "power")  # was 4.2 MJ: the two hours billed
    assert found["c1"] == (pytest.approx(truth, rel=0.01), "counter")
    store.close()


def test_raw_power_and_its_rollups_give_one_answer(tmp_path: Path) -> None:
    """The bursts fill whole minutes, so the rollups hold what the raw rows do: the same joules either way."""
    store = two_bursts(tmp_path / "same.db")
    window = (T0 - 3600, T0 + 3 * 3600)
    raw = joules(store, *window)
    store.rollup(now=T0 + 3 * 3600)
    store.prune(60, 30 * 86400, now=T0 + 3 * 3600)
    assert store.count_rows()["sample"] == 0
    rolled = joules(store, *window)
    assert rolled["p1"] == (pytest.approx(raw["p1"][0], rel=0.01), "rollup")
    assert rolled["c1"] == (pytest.approx(raw["c1"][0], rel=0.01), "rollup")
    store.close()


def test_the_silence_rule_holds_at_the_windows_edges(tmp_path: Path) -> None:
    """A window from the middle of the silence to just after it: only the second 10 minutes, for each GPU."""
    store = two_bursts(tmp_path / "edge.db")
    found = joules(store, T0 + ON + OFF / 2, T0 + 2 * ON + OFF)
    assert found["p1"] == (pytest.approx(WATTS * ON, rel=0.02), "power")
    assert found["c1"] == (pytest.approx(WATTS * ON, rel=0.02), "counter")
    store.close()


def test_a_gpu_lost_all_window_has_no_source(tmp_path: Path) -> None:
    store = Store(tmp_path / "lost.db")
    store.write([NodeSample("l1", T0 + s, gpus=(GpuSample("l1", 0, uuid="GPU-l", name="H100"),)) for s in range(60)])
    assert store.energy(["l1"], T0 - 60, T0 + 120) == [("l1", 0, 0.0, "none")]  # was "power"
    store.close()
