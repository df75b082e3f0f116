"""The simulated energy counter counts the energy used, not the wall clock's steps (session 25, "clocksteps").

The counter is integrated over wall time from each GPU's checkpoint. The whole machine's clock stepped +3600 s for
15 s, then back: GPU 0's counter jumped 1.2 MJ at once (the hour integrated) and then stood still for an hour while
power read 72 W (the time from the checkpoint written during the step was negative). A real NVML counter does
neither. Both clocks are injected here: the wall clock and the monotonic clock that tells its steps.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.sim.state import SimNode

MAX_W = 700.0  # an H100 SXM draws at most this


class Clocks:
    """A wall and a monotonic clock moved together (time passing) or the wall alone (a step)."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_800_000_000.25, 5000.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def node(state: Path, clocks: Clocks) -> SimNode:
    """One process's view of the node (each one opened is another process's, as the shim's or the agent's)."""
    return SimNode(
        state, "n1", profile="h100-sxm", gpus=1, seed=7, workload="idle", clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )  # fmt: skip


def test_a_step_ahead_and_back_neither_adds_the_step_nor_freezes_the_counter(tmp_path: Path) -> None:
    clocks = Clocks()
    sim = node(tmp_path, clocks)
    before = sim.reading(0).energy_j
    clocks.wall += 3600.0  # NTP (or the RTC) an hour ahead, for 15 s
    clocks.tick(15.0)
    ahead = sim.reading(0)
    assert 0.0 < ahead.energy_j - before <= 15.0 * MAX_W  # 15 s of energy, not an hour's
    sim.set_power_limit(0, 400.0)  # a checkpoint written on the stepped clock
    clocks.wall -= 3600.0  # set right
    clocks.tick(60.0)
    back = sim.reading(0)
    assert back.power_w > 0.0
    assert back.energy_j - ahead.energy_j >= 60.0 * back.power_w * 0.5  # the minute counted, not frozen
    assert back.energy_j - ahead.energy_j <= 60.0 * MAX_W


def test_a_process_opening_the_node_after_a_step_does_not_count_the_step(tmp_path: Path) -> None:
    clocks = Clocks()
    first = node(tmp_path, clocks).reading(0).energy_j
    clocks.wall -= 3600.0  # stepped back while no process had the node open
    clocks.tick(30.0)
    later = node(tmp_path, clocks).reading(0).energy_j  # a new process: what it reads is the file's
    assert 30.0 * 10.0 <= later - first <= 30.0 * MAX_W
    clocks.wall += 7200.0  # and an hour ahead of right
    clocks.tick(30.0)
    ahead = node(tmp_path, clocks).reading(0).energy_j
    assert 30.0 * 10.0 <= ahead - later <= 30.0 * MAX_W
