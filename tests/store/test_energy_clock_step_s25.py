"""Energy from the driver's counter when a wall-clock step stamps readings minutes off (session 25, "clocksteps").

A controller clock stepped +240 s for 40 s (a hardware clock kept in local time, then NTP) stamped 40 s of a node's
readings 4 minutes ahead; once real time reached them they interleaved with the readings really taken then, the
counter went up and down in time order, and each decrease was billed as a reboot: the whole later counter. A 35 s
window read 64 times the energy in the simulator, and on a real GPU, whose counter holds the energy since its driver
loaded, each decrease would have added hundreds of kWh. A reboot must still count from zero, also soon after another.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0
WATTS = 600.0
DRIVER_LOADED_J = 1.8e9  # 500 kWh: a counter weeks after the driver loaded


def readings(stamp: Callable[[float], float], seconds: int = 600, base: float = DRIVER_LOADED_J) -> list[NodeSample]:
    """A GPU at `WATTS` read every 5 s for `seconds`, each reading taken at T0 + r stamped T0 + stamp(r)."""
    return [
        NodeSample("n1", T0 + stamp(r), gpus=(GpuSample("n1", 0, power_w=WATTS, energy_j=base + WATTS * r),))
        for r in range(0, seconds, 5)
    ]


def joules(tmp_path: Path, samples: list[NodeSample], since: float, until: float) -> float:
    store = Store(tmp_path / "f.db")
    try:
        store.write(samples)
        ((_, _, used, source),) = store.energy(["n1"], T0 + since, T0 + until)
    finally:
        store.close()
    assert source == "counter"
    return used


def test_readings_stamped_ahead_then_met_by_real_time_are_not_billed_twice(tmp_path: Path) -> None:
    # taken at 100-140 s, stamped at 340-380 s (+ 21 ms): among those really taken then
    ahead = readings(lambda r: r + 240.021 if 100 <= r < 140 else r)
    assert joules(tmp_path, ahead, 340, 380) == pytest.approx(WATTS * 40)


def test_readings_stamped_behind_among_older_ones_are_not_billed_as_reboots(tmp_path: Path) -> None:
    # a step back of 180 s for 30 s: taken at 200-230 s, stamped at 20-50 s, among the readings of then
    behind = readings(lambda r: r - 179.979 if 200 <= r < 230 else r)
    assert joules(tmp_path, behind, 20, 50) == pytest.approx(WATTS * 30)
    assert joules(tmp_path, behind, 300, 330) == pytest.approx(WATTS * 30)  # and the counter's own time goes on


def test_a_node_clock_set_back_a_minute_with_a_young_counter(tmp_path: Path) -> None:
    # a counter a minute old at 72 W (the driver just loaded) whose readings went back 60 s for 12 s
    idle = [
        NodeSample(
            "n1", T0 + r - (59.9 if 60 <= r < 72 else 0), gpus=(GpuSample("n1", 0, power_w=72.0, energy_j=72.0 * r),)
        )
        for r in range(0, 120, 2)
    ]
    assert joules(tmp_path, idle, 0, 30) == pytest.approx(72.0 * 30)


def test_a_reboot_counts_from_zero_after_a_silence_and_soon_after_another(tmp_path: Path) -> None:
    before = readings(lambda r: r, seconds=60)  # 0-55 s, then down 2 minutes for a reboot
    first = readings(lambda r: r + 180, seconds=30, base=WATTS * 5)  # 180-205 s: 5 s of energy since the driver loaded
    second = readings(lambda r: r + 210, seconds=30, base=WATTS * 2)  # a driver reload 5 s later: 2 s of energy
    used = joules(tmp_path, before + first + second, 0, 240)
    # 55 s; the silence billed for the usual 5 s at 600 W; 25 s; the reload's step from zero (2 s); 25 s
    assert used == pytest.approx(WATTS * (55 + 5 + 25 + 2 + 25))
