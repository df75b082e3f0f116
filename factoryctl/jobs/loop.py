"""The controller's jobs loop: a scheduling pass every `scheduler.interval`, on its own thread.

A pass may wait on slow nodes (a launch, a `ranks` answer) for seconds; on the controller's own loop that would
hold its stop, reload and figures. The thread has its own store connection (SQLite's are per thread), takes the
same scheduler lock as `sched tick` (so cron and the controller may both run passes), and skips the pass cheaply
when no job is queued or running. A pass that fails is logged and the next one tries again: the controller's
telemetry never stops for the queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError
from factoryctl.jobs.leftovers import owed_kills
from factoryctl.jobs.node_calls import using_sessions
from factoryctl.jobs.price_now import price_now
from factoryctl.jobs.tick import LIVE_STATES, TickReport, run_tick
from factoryctl.periodic import Periodic
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.poll import SessionSource

log = logging.getLogger("factoryctl.controller")


class JobsLoop(Periodic):
    """Runs `run_tick` every `interval_s` until stopped; `passes` counts the passes made (the tests' and stats' view)."""

    def __init__(
        self,
        config: FactoryConfig,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        sessions: SessionSource | None = None,
    ) -> None:
        """`sessions`: the nodes' open agent sessions (the controller's links), used instead of a login per pass."""
        super().__init__("jobs-loop", self._tick, interval_s, clock)
        self.config = config
        self._sessions = sessions
        self._store: Store | None = None  # the thread's own (SQLite connections are per thread)
        self.passes = 0

    def reconfigure(self, config: FactoryConfig, interval_s: float) -> None:
        """A reloaded factory.yaml (nodes added or removed, a new interval): a pass on it at once.

        Before, the passes kept the configuration the controller started with: a node a SIGHUP added never got a
        job, and one it removed was never judged lost; and a shorter interval waited out the longer one.
        """
        self.config = config
        self.set_interval(interval_s)

    def ended(self) -> None:
        """The thread's store connection closed as it ends."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _tick(self) -> None:
        if self._store is None:
            self._store = Store(self.config.store_path)
        self._one_pass(self._store)

    def _one_pass(self, store: Store) -> None:
        try:
            if not store.jobs(states=LIVE_STATES, limit=1) and not owed_kills(store):
                return  # nothing queued, running or owed a kill: no pass
            now, config = self._wall_clock(), self.config  # one configuration for the whole pass, reloaded or not
            price, _ = price_now(config, now)
            with using_sessions(self._sessions) if self._sessions is not None else contextlib.nullcontext():
                report = run_tick(config, store, now=now, price=price)
        except FactoryError as exc:
            log.error("scheduling pass failed: %s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
            return
        except Exception:
            log.exception("scheduling pass failed")
            return
        self.passes += 1
        _log_report(report)


def _log_report(report: TickReport) -> None:
    for node, launch in report.strays:
        log.warning("killed a stray rank launch %s on %s: running, but no job holds it", launch, node)
    for node, launch in report.unsignalled:
        log.warning(
            "%s did not take the SIGTERM of preempted launch %s: sent when it answers, else SIGKILL", node, launch
        )
    for change in report.changes:
        if change.state_changed or change.event is not None:  # a preemption's stop is no state change
            job = change.after
            log.info("job %s (%s) %s: %s", job.id, job.name, job.state.value.lower(), job.reason)
