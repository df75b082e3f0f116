"""The controller's scheduling passes and power loop under reloads and clock steps.

A wall clock stepped back an hour stalled the power loop for that hour; a reload shortening the passes' interval
waited out the old one; a reload turning the power loop off held the controller's own loop (telemetry, stop, further
reloads) behind a run waiting on a node for up to 20 s. The power runs here read their GPUs through a session
source the test gives (the controller's links), whose sample blocks until the test releases it: a node that does
not answer, with no SSH involved.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from waiting import wait_for

from factoryctl.config import FactoryConfig, load_config
from factoryctl.controller import Controller
from factoryctl.controller_loops import ControllerLoops
from factoryctl.errors import NodeError
from factoryctl.jobs.loop import JobsLoop
from factoryctl.model.jobs import Job, JobSpec
from factoryctl.power.policy_loop import PowerLoop, synced_power_loop
from factoryctl.store.sqlite import Store

HOUR = 3600


class SteppedClock:
    """A wall clock `offset` seconds from the real one, which the test sets."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class HangingSession:
    """A node's held session whose sample does not answer until the test releases it (or 10 s pass)."""

    failure = None

    def __init__(self) -> None:
        self.entered, self.release, self.left = threading.Event(), threading.Event(), threading.Event()

    def sample(self, timeout: float) -> Any:
        self.entered.set()
        try:
            self.release.wait(10)
            raise NodeError("h01", "timeout", "the test's node did not answer")
        finally:
            self.left.set()


def _config(tmp_path: Path, extra: str = "") -> FactoryConfig:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lr\nstate_dir: {tmp_path / 'state'}\nnodes:\n  h01: {{transport: local, sim: {{profile: h100-sxm}}}}\n"
        f"controller: {{interval_s: 0.5}}\n{extra}"
    )
    return load_config(path)


def _power_config(tmp_path: Path) -> FactoryConfig:
    """A tiers policy on a price file of 48 h around now: a run reads the GPUs (the session) to plan them."""
    now = int(time.time()) // HOUR * HOUR
    rows = ["timestamp_utc,price_per_mwh"]
    rows += [f"{datetime.fromtimestamp(now + h * HOUR, timezone.utc):%Y-%m-%dT%H:%M:%SZ},60" for h in range(-24, 24)]
    (tmp_path / "prices.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "policy.yaml").write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n")
    power = "power: {policy: policy.yaml, price_source: csv, prices: prices.csv, interval: 1h}\n"
    return _config(tmp_path, power)


def test_the_power_loop_keeps_its_interval_when_the_wall_clock_steps_back(tmp_path: Path) -> None:
    """The interval was timed on the wall clock: stepped back an hour (NTP), the next run came an hour late."""
    clock = SteppedClock()
    loop = PowerLoop(_config(tmp_path), 0.2, clock)  # no policy: each run fails at once, and is counted
    loop.start()
    try:
        wait_for(lambda: loop.runs >= 1, 10, "a first run")
        clock.offset = -HOUR
        runs = loop.runs
        wait_for(lambda: loop.runs >= runs + 3, 10, "runs every 0.2 s after the step back")
    finally:
        loop.stop()


def test_a_reload_turning_the_power_loop_off_does_not_wait_for_a_run_under_way(tmp_path: Path) -> None:
    config = _power_config(tmp_path)
    session = HangingSession()
    loop = PowerLoop(config, 3600.0, sessions=lambda node: session)  # type: ignore[arg-type,return-value]
    loop.start()
    try:
        wait_for(session.entered.is_set, 10, "the run reading h01")
        assert synced_power_loop(loop, _config(tmp_path), time.time, None) is None  # no policy: the loop stops
        assert not session.left.is_set()  # it returned while the run still waited on h01 (it joined, up to 20 s)
    finally:
        session.release.set()
        loop.stop()
    assert session.left.is_set()
    assert loop.runs == 1  # asked to stop during its run: it ended after it


def test_a_reload_shortening_the_passes_interval_takes_effect_at_once(tmp_path: Path) -> None:
    """`scheduler.interval` 1h -> 0.1 s by a reload: the passes waited out the hour."""
    config = _config(tmp_path)
    store = Store(config.store_path)
    try:  # a job too big for the fleet: queued for ever, so each pass is made (and counted)
        store.add_job(Job("big", JobSpec(4, name="big", user="ana", command=("true",)), time.time()))
    finally:
        store.close()
    loop = JobsLoop(config, 3600.0)
    loop.start()
    try:
        wait_for(lambda: loop.passes >= 1, 10, "a first pass")
        loop.reconfigure(config, 0.1)
        wait_for(lambda: loop.passes >= 3, 10, "passes every 0.1 s")
    finally:
        loop.stop()


def test_a_reload_setting_scheduler_interval_0s_stops_the_passes(tmp_path: Path) -> None:
    config = _config(tmp_path, "scheduler: {interval: 1s}\n")
    controller = Controller(config)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller.jobs_loop is not None, 30, "the passes started")
        passes = controller.jobs_loop
        assert passes is not None
        assert passes.running
        config.path.write_text(config.path.read_text().replace("interval: 1s", "interval: 0s"))  # type: ignore[union-attr]
        controller.request_reload()
        wait_for(lambda: controller.jobs_loop is None, 30, "the passes stopped")
        wait_for(lambda: not passes.running, 30, "their thread ended")
    finally:
        controller.request_stop()
        runner.join(30)
    assert not runner.is_alive()


def test_the_controllers_loops_join_at_shutdown_a_loop_a_reload_only_asked_to_stop(tmp_path: Path) -> None:
    session = HangingSession()
    loops = ControllerLoops(time.time, lambda node: session)  # type: ignore[arg-type,return-value]
    loops.sync(_power_config(tmp_path))
    power = loops.power
    assert power is not None
    try:
        wait_for(session.entered.is_set, 10, "the run reading h01")
        loops.sync(_config(tmp_path))  # the reload: no policy, no scheduling passes
        assert loops.power is None
        assert not session.left.is_set()  # the reload did not wait for the run
        assert power.running
    finally:
        session.release.set()
        loops.stop()  # the controller's shutdown
    assert not power.running
