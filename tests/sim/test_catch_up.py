"""A GPU read after hours unread is caught up phase by phase, and lands where reading it all along would.

Catching up second by second would take seconds per day unread; the driver instead integrates each workload phase
at its mean power (physics.GpuPhysics.mean_power_w), which the per-second sum matches to about 0.1 % per phase.
The old catch-up used one second's power for each minute and was off by up to 3 % over hours.
"""

from __future__ import annotations

import os
import time

import pytest

from factoryctl.sim.state import SimNode

HOURS = 2


def energy_after(tmp_path, clock, name: str, every_s: float | None) -> list[float]:
    """Energy used by each GPU over HOURS, read every `every_s` seconds (None: once, at the end)."""
    node = SimNode(tmp_path / name, "n1", profile="h100-sxm", gpus=4, seed=2, clock=clock)
    node.set_power_limit(1, 300)  # one capped GPU: the cap's clamp is averaged too
    start = [node.reading(i).energy_j for i in range(4)]
    begin = clock.now
    if every_s is not None:
        while clock.now + every_s < begin + HOURS * 3600:
            clock.advance(every_s)
            for i in range(4):
                node.reading(i)
    clock.now = begin + HOURS * 3600
    return [node.reading(i).energy_j - e for i, e in enumerate(start)]


def test_a_late_read_agrees_with_reading_all_along(tmp_path, clock):
    begin = clock.now
    late = energy_after(tmp_path, clock, "late", None)
    clock.now = begin
    along = energy_after(tmp_path, clock, "along", 250.0)  # under the checkpoint interval: exact per second
    for got, exact in zip(late, along, strict=True):
        assert got == pytest.approx(exact, rel=2e-3)


def test_a_late_read_keeps_the_counter_rising_and_the_temperature_settled(tmp_path, clock):
    node = SimNode(tmp_path / "s", "n1", profile="h100-sxm", gpus=2, seed=2, workload="idle", clock=clock)
    first = node.reading(0)
    clock.advance(86400.0)
    later = node.reading(0)
    assert 0.8 * 72 * 86400 <= later.energy_j - first.energy_j <= 1.1 * 72 * 86400
    assert later.temperature_c == pytest.approx(first.temperature_c, abs=1.0)  # idle all day: idle temperature


@pytest.mark.parametrize("workload", ["synthetic", "rank"])
def test_a_late_read_agrees_with_reading_every_second_in_thermal_slowdown(tmp_path, clock, workload):
    """Under a cooling failure a busy GPU hovers at its slowdown temperature: seconds at full power, tens slowed.

    Charging a whole phase at the power of its first second's temperature counted 65-81 % too much energy.
    """
    begin = clock.now
    used = {}
    for every_s in (1.0, None):
        clock.now = begin
        name = f"{workload}-{every_s}"
        node = SimNode(tmp_path / name, "n1", profile="h100-sxm", gpus=2, seed=3, workload="idle", clock=clock)
        if workload == "rank":
            node.register_process(os.getpid(), [0, 1], load=1.0)
        else:
            node = SimNode(tmp_path / name, "n1", workload="synthetic", clock=clock)
        node.inject("hot")
        start = [node.reading(i).energy_j for i in range(2)]
        while every_s is not None and clock.now + every_s < begin + HOURS * 3600:
            clock.advance(every_s)
            for i in range(2):
                node.reading(i)
        clock.now = begin + HOURS * 3600
        used[every_s] = [node.reading(i).energy_j - e for i, e in enumerate(start)]
        assert node.reading(0).reasons & 0x20 or workload == "synthetic"  # a loaded GPU ends in slowdown
    for got, exact in zip(used[None], used[1.0], strict=True):
        assert got == pytest.approx(exact, rel=1e-2)


def test_a_week_unread_in_thermal_slowdown_catches_up_quickly(tmp_path, clock):
    node = SimNode(tmp_path / "w", "n1", profile="h100-sxm", gpus=8, seed=3, clock=clock)
    node.inject("hot")
    node.reading(0)
    clock.advance(7 * 86400.0)
    began = time.process_time()  # this process's CPU: a loaded machine stretched the wall-clock 0.8 s to 7 s
    for i in range(8):
        node.reading(i)
    assert time.process_time() - began < 5.0  # every GPU of the node, a week each, under a cooling failure
