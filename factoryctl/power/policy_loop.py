"""The controller's power loop: `power apply` on its own thread, at each price interval's start and every `power.interval`.

Operators ran `power apply` from cron; the controller now does it itself when factory.yaml sets `power.policy` and a
price source. A run is `power apply all` (policy_apply.py: the same plan, `apply_limit`'s clamped and audited
change), with three differences that suit a daemon. It reads each node's GPUs over the controller's own open agent
session (`sessions`, the collector's links) rather than a login per node, and asks `apply_limit` (which logs in)
only of the nodes where a GPU is off its plan: a run where all is at plan costs no login at all. A node that cannot
be read or changed is logged and skipped, and tried again at the next run. A run that fails (a broken policy file,
a price feed down) is logged and the next one tries again: the controller's telemetry never stops for the policy.

Runs come at each price interval's start (the next price row's time: the plan changes then) and every
`interval_s` between them, which brings back a GPU reset, a rebooted node or a hand `power set`. The interval is
timed on the monotonic clock (periodic.py: a wall clock stepped back an hour stalled the loop for the hour); only the
boundaries are wall-clock times, re-read every second. cron's `power apply` may keep running beside
it: both plan the same course (the state file, policy_state.py), each node's agents change limits one at a time
(the node's limits lock), so the second to come finds every GPU at its plan, which is no change and no audit entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.periodic import Periodic
from factoryctl.power.limit_audit import changed
from factoryctl.telemetry.poll import SessionSource, check_agent_cache, held_or_own_session
from factoryctl.transport.fanout import DEFAULT_FANOUT, fan_out
from factoryctl.transport.hints import hinted

if TYPE_CHECKING:
    from factoryctl.power.limits import LimitChange
    from factoryctl.power.policy_apply import PolicyInputs

log = logging.getLogger("factoryctl.controller")

#: Who the audit log says made the loop's changes (the reason's prefix, as `power apply: ...` is the command's).
BY = "controller power loop"
#: Seconds a node has to answer one of the loop's requests (connect, start the agent, answer).
NODE_TIMEOUT_S = 15.0
#: A node whose controller link is down is not logged in to (15 s a run of a dead node, and a stop waiting for it):
#: while the links come up after the controller's start, such a node is tried again this soon, else next run.
LINK_RETRY_S = 10.0
#: How long after the loop's start links may still be coming up (the retry above).
LINKS_STARTING_S = 120.0
#: What a node whose link is down is said to be (kept out of the run's log: the controller logs it down already).
LINK_DOWN = "the controller's link to it is down (connecting, or the node is down): its limits are set once it is up"


@dataclass
class PowerRun:
    """One run's outcome: when, the GPUs it moved, the nodes it could not read or change, the next boundary."""

    at: float
    changes: list[LimitChange] = field(default_factory=list)
    errors: list[NodeError] = field(default_factory=list)
    next_boundary_s: float | None = None
    failure: str | None = None  # why the whole run failed (the policy, the prices), None when it ran


class PowerLoop(Periodic):
    """Applies the power policy at each price interval's start and every `interval_s` until stopped."""

    def __init__(
        self,
        config: FactoryConfig,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        sessions: SessionSource | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: the wall clock (prices, boundaries); `sessions`: the nodes' open agent sessions (the links)."""
        super().__init__("power-loop", self._tick, interval_s, clock, monotonic)
        self.config = config
        self._sessions = sessions
        self._started_s = monotonic()
        self.runs = 0
        self.last: PowerRun | None = None

    def reconfigure(self, config: FactoryConfig, interval_s: float) -> None:
        """A reloaded factory.yaml (a new policy, prices, interval or nodes): used from a run made at once."""
        self.config = config
        self.set_interval(interval_s)

    def stats(self) -> dict[str, Any]:
        """What `controller status` says of the loop: its interval, runs, and the last run's time and outcome."""
        last = self.last
        return {
            "interval_s": self.interval_s,
            "runs": self.runs,
            "last_run_at": last.at if last is not None else None,
            "last_changed": len(last.changes) if last is not None else None,
            "last_errors": len(last.errors) + (last.failure is not None) if last is not None else None,
            "last_failure": last.failure if last is not None else None,
        }

    def _tick(self) -> float | None:
        """One run; the next price interval's start, when the next run is due at the latest."""
        run = self.run_once()
        self.last, self.runs = run, self.runs + 1
        return run.next_boundary_s

    def run_once(self) -> PowerRun:
        """Plan every GPU and set those off their plan; a failure is logged, never raised (the next run tries again).

        A stop asked meanwhile (`stop_asked`: the controller's stop, a reload that turns the loop off) cuts the run
        short: no node is waited for beyond a moment (`limits.CANCEL_SETTLE_S`), what changed is recorded and kept.
        """
        from factoryctl.power.limits import LimitsInterrupted
        from factoryctl.transport.fanout import Cancelled

        run = PowerRun(self._wall_clock())
        try:
            self._apply(run)
        except (Cancelled, LimitsInterrupted) as stopped:
            _cut_short(run, stopped)
        except FactoryError as exc:
            run.failure = f"{exc.message}{f' ({exc.hint})' if exc.hint else ''}"
            log.error("power loop run failed: %s", run.failure)
        except Exception as exc:
            run.failure = f"{type(exc).__name__}: {exc}"
            log.exception("power loop run failed")
        return run

    def _apply(self, run: PowerRun) -> None:
        from factoryctl.power.configured_prices import configured_prices
        from factoryctl.power.policy_apply import (
            apply_groups,
            audit_reason,
            limit_groups,
            plan_rows,
            read_inputs,
            record_course,
            split_at_plan,
        )

        config = self.config
        inputs = read_inputs(
            config,
            "the controller's power loop",
            lambda: configured_prices(config, "for the power loop"),
            self._wall_clock,
        )
        nodes = list(config.nodes.values())
        samples, run.errors = self._read(config, nodes)
        rows = plan_rows(inputs, samples, None)
        run.next_boundary_s = next_boundary(inputs)
        groups = limit_groups(split_at_plan(rows)[0], nodes, None)  # only nodes off their plan are logged in to
        reason_of, limits = (lambda row: audit_reason(inputs, row, None, BY)), (NODE_TIMEOUT_S, DEFAULT_FANOUT, None)
        # the read's errors go along, so a run a stop cuts short keeps them (`LimitsInterrupted.errors`)
        changes, run.errors = apply_groups(inputs, groups, reason_of, limits, ([], run.errors), None, self.stop_asked)
        record_course(inputs, rows)
        run.changes = [change for change in changes if changed(change)]  # GPUs that moved (or may have)
        starting = self._monotonic() - self._started_s < LINKS_STARTING_S
        if starting and any(error.message == LINK_DOWN for error in run.errors):
            soon = run.at + LINK_RETRY_S
            run.next_boundary_s = soon if run.next_boundary_s is None else min(run.next_boundary_s, soon)
        _log_run(inputs, run)

    def _read(self, config: FactoryConfig, nodes: list[NodeSpec]) -> tuple[list[NodeSample], list[NodeError]]:
        """Every node's GPUs, over its open session where the controller has one; the nodes that did not answer."""
        sessions = self._sessions
        check_agent_cache(nodes)

        def one(node: NodeSpec) -> NodeSample:
            held = sessions(node.name) if sessions is not None else None
            if sessions is not None and (held is None or held.failure is not None):
                raise NodeError(node.name, "timeout", LINK_DOWN)
            with held_or_own_session(node, config, NODE_TIMEOUT_S, held) as session:
                return session.sample(NODE_TIMEOUT_S)

        outcomes = fan_out(nodes, one, DEFAULT_FANOUT, self.stop_asked)  # a stop leaves the nodes still reading
        samples = [outcome for _, outcome in outcomes if isinstance(outcome, NodeSample)]
        errors = [hinted(outcome) for _, outcome in outcomes if isinstance(outcome, NodeError)]
        return samples, errors


def synced_power_loop(
    loop: PowerLoop | None, config: FactoryConfig, clock: Callable[[], float], sessions: SessionSource | None
) -> PowerLoop | None:
    """The controller's power loop as `config` asks for it: started, asked to stop, or given the new configuration.

    Wanted with `power.policy`, `power.price_source` and a `power.interval` other than 0s (at the controller's start
    and at each reload); a loop given a reloaded configuration runs on it at once. One no longer wanted is only asked
    to stop: its run under way (a node slow to answer) ends on its own thread, the caller's loop does not wait for it.
    """
    from factoryctl.config_schema import parse_duration

    power = config.settings.power
    interval = parse_duration(power.interval)
    if power.policy is None or power.price_source is None or interval <= 0:
        if loop is not None:
            loop.signal_stop()
            why = (
                "power.interval is 0s"
                if interval <= 0
                else f"factory.yaml sets no {'power.policy' if power.policy is None else 'power.price_source'}"
            )
            log.info("power loop stopped: %s", why)
        return None
    if loop is not None:
        loop.reconfigure(config, interval)
        return loop
    loop = PowerLoop(config, interval, clock, sessions)
    loop.start()
    log.info("power loop started: %s, every %s and at each price interval's start", power.policy, power.interval)
    return loop


def next_boundary(inputs: PolicyInputs) -> float | None:
    """The next price row's start after now (when the plan may change), None past the last row."""
    later = [point.timestamp_s for point in inputs.points if point.timestamp_s > inputs.now_s]
    return float(min(later)) if later else None


def _cut_short(run: PowerRun, stopped: BaseException) -> None:
    """A run a stop cut short: the GPUs it changed before (kept and logged), the nodes it left; no failure."""
    from factoryctl.power.limits import LimitsInterrupted, Unconfirmed

    if isinstance(stopped, LimitsInterrupted):
        run.changes = [change for change in stopped.changes if changed(change)]
        run.errors = list(stopped.errors)
    unanswered = [error.node for error in run.errors if isinstance(error, Unconfirmed)]
    log.info(
        "power loop run cut short by a stop: %d GPU(s) changed%s",
        len(run.changes),
        f", {', '.join(unanswered)} left unanswered (limits may have changed)" if unanswered else "",
    )


def _log_run(inputs: PolicyInputs, run: PowerRun) -> None:
    """A line per node changed and per node skipped, as the jobs loop says each job's change."""
    by_node: dict[str, list[LimitChange]] = {}
    for change in run.changes:
        by_node.setdefault(change.node, []).append(change)
    for node, changes in by_node.items():
        gpus = ",".join(str(change.gpu) for change in changes)
        after = sorted({f"{change.enforced_w:g} W" for change in changes if change.enforced_w is not None})
        log.info("power loop set %s GPU %s to %s (%s policy)", node, gpus, ", ".join(after) or "?", _kind(inputs))
    for error in run.errors:
        if error.message != LINK_DOWN:
            log.warning("power loop skipped %s (tried again next run): %s", error.node, error.message)


def _kind(inputs: PolicyInputs) -> str:
    """The policy's kind, as its courses parsed it."""
    kinds = {policy.kind for policy, _ in inputs.courses.values()}
    return ", ".join(sorted(kinds)) or "the"
