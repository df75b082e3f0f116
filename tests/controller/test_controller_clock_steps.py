"""The controller's own checks and maintenance keep their pace when the wall clock steps.

Its timers were set from time.time(): after a step back of 10 minutes the 3 s lock and store check stopped for 10
minutes (a second controller could start meanwhile), and after a step ahead that was undone, for a day. The
controller runs in-process with a real local agent on a simulated GPU; both of its clocks are injected, and only the
monotonic one is moved to make a timer due.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import FILE_CHECK_EVERY_S, MAINTAIN_EVERY_S, Controller
from factoryctl.store.lock import controller_is_running, lock_path
from factoryctl.store.sqlite import Store

pytestmark = pytest.mark.slow

T0 = 1_795_000_020.0


class Clocks:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0


def start(tmp_path: Path, clocks: Clocks) -> tuple[Controller, threading.Thread]:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: steps\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 1}\ncontroller:\n  interval_s: 0.5\n"
    )
    controller = Controller(load_config(path), clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    wait_for(lambda: controller_is_running(tmp_path / "state") and controller.collector is not None, 30)
    wait_for(lambda: samples_stored(tmp_path / "state") > 0, 30)  # a rollup forced before any row makes no mark
    return controller, runner


def samples_stored(state: Path) -> int:
    """Rows in the store so far (read apart from the controller's own connection)."""
    path = state / "factory.db"
    if not path.exists():
        return 0
    reader = Store(path, readonly=True)
    try:
        return reader.count_rows()["sample"]
    finally:
        reader.close()


@pytest.mark.parametrize("step", [-600.0, 86400.0], ids=["back-10-min", "ahead-1-day"])
def test_a_replaced_lock_is_still_noticed_after_the_wall_clock_steps(tmp_path: Path, step: float) -> None:
    clocks = Clocks()
    controller, runner = start(tmp_path, clocks)
    try:
        if step > 0:  # ahead, then back again: the timers were set a day ahead
            clocks.wall += step
            clocks.mono += MAINTAIN_EVERY_S
            controller._wake.set()
            wait_for(lambda: controller.store is not None and controller.store.get_meta("rollup_upto_min") is not None)
            clocks.wall -= step
        else:
            clocks.wall += step
        lock = lock_path(tmp_path / "state")
        lock.rename(lock.with_name("moved.lock"))  # what an operator's `mv` or a cleanup script does
        clocks.mono += FILE_CHECK_EVERY_S + 1
        controller._wake.set()
        runner.join(30)
        assert not runner.is_alive()
    finally:
        controller.request_stop()
        runner.join(30)
    assert controller.failure is not None
    assert "controller lock" in controller.failure


def test_maintenance_runs_on_elapsed_time_after_a_step_back(tmp_path: Path) -> None:
    clocks = Clocks()
    controller, runner = start(tmp_path, clocks)
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        clocks.wall -= 600
        clocks.mono += MAINTAIN_EVERY_S + 1
        controller._wake.set()
        wait_for(lambda: store.get_meta("rollup_upto_min") is not None, 30)
        assert store.get_meta("rollup_upto_min") == str(int((T0 - 600) // 60) - 2)  # on the wall clock's date
    finally:
        controller.request_stop()
        runner.join(30)
        store.close()
    assert controller.failure is None
