"""The controller's two background loops, the scheduling passes and the power loop, kept as factory.yaml asks.

At the controller's start and at each reload (SIGHUP) each loop is started, given the new configuration (it runs on
it at once), or asked to stop. Asked only: a run under way may wait on a slow node for many seconds, and joining it
there held the controller's own loop (telemetry, its stop, further reloads) behind it, for up to 20 s. The loops a
reload stopped are joined with the others at the controller's shutdown, so none writes the store after it closes.
Both loops are imported when first wanted, not with the controller (jobs/loop.py, power/policy_loop.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from factoryctl.config import FactoryConfig
from factoryctl.config_schema import parse_duration

if TYPE_CHECKING:
    from factoryctl.jobs.loop import JobsLoop
    from factoryctl.periodic import Periodic
    from factoryctl.power.policy_loop import PowerLoop
    from factoryctl.telemetry.poll import SessionSource

log = logging.getLogger("factoryctl.controller")

#: Longest the controller's stop waits for the loops' runs under way to end, all loops together.
STOP_WAIT_S = 20.0


class ControllerLoops:
    """The scheduling passes (`jobs`) and the power loop (`power`), each None while factory.yaml does not want it."""

    def __init__(self, clock: Callable[[], float], sessions: SessionSource | None) -> None:
        """`clock`: the controller's wall clock; `sessions`: the nodes' open agent sessions (the collector's links)."""
        self._clock, self._sessions = clock, sessions
        self.jobs: JobsLoop | None = None
        self.power: PowerLoop | None = None
        self._stopping: list[Periodic] = []  # asked to stop by a reload, maybe still ending their run

    def sync(self, config: FactoryConfig) -> None:
        """Start, reconfigure or ask to stop each loop as `config` asks; never waits for a run under way."""
        from factoryctl.power.policy_loop import synced_power_loop

        self._stopping = [loop for loop in self._stopping if loop.running]
        self._sync_jobs(config)
        power = synced_power_loop(self.power, config, self._clock, self._sessions)
        if self.power is not None and power is not self.power:
            self._stopping.append(self.power)
        self.power = power

    def _sync_jobs(self, config: FactoryConfig) -> None:
        """The scheduling passes on their own thread (jobs/loop.py), unless `scheduler.interval` is 0s."""
        interval = parse_duration(config.settings.scheduler.interval)
        if interval <= 0:
            if self.jobs is not None:
                self.jobs.signal_stop()
                self._stopping.append(self.jobs)
                self.jobs = None
                log.info("scheduling passes stopped: scheduler.interval is 0s")
        elif self.jobs is not None:
            self.jobs.reconfigure(config, interval)
        else:
            from factoryctl.jobs.loop import JobsLoop

            self.jobs = JobsLoop(config, interval, self._clock, self._sessions)
            self.jobs.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """At the controller's shutdown: every loop asked to stop, then waited for (at most `timeout` in all)."""
        loops = [loop for loop in (self.power, self.jobs, *self._stopping) if loop is not None]
        for loop in loops:
            loop.signal_stop()
        deadline = time.monotonic() + timeout
        for loop in loops:
            loop.join(max(0.0, deadline - time.monotonic()))
        self.jobs = self.power = None
        self._stopping = []
