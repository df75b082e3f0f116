"""`PolledServices`: the dashboard's own embedded collector, for when no controller writes the store.

One long-lived agent session per node (local subprocess or one SSH connection), kept streaming at the factory's
interval by the controller's own `NodeLink` (telemetry/links.py), so there is one reconnect loop in the code base.
Each node's `PolledNode` (polled_node.py) is the link's sink. `snapshot()` only reads what the streams last
delivered, so it returns at once however slow a node is; a node that has not answered yet shows as connecting.

A node's state and reason are judged by the controller's own `NodeHealth` (telemetry/health.py), fed what the
controller's writer is fed, and each change is an event worded as the controller's (node_degraded, node_down,
node_up). Keep it that way, never a rule of its own: `dash` without a controller and `nodes list` must say the same
of the same history, and a node keeps its state when a controller takes over or hands back.
Drains and power-limit changes go through the store (drained flag, events, audit log) when it can be opened, else
they live in memory for this session. Imports no Textual: the CLI, a benchmark or a test can drive it headless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, NodeError, UsageError
from factoryctl.live.grid import GridPrice
from factoryctl.live.history import RecentHistory
from factoryctl.live.jobs_feed import JobsFeed, JobsRead
from factoryctl.live.polled_node import PolledNode
from factoryctl.live.services import DashboardEvent, FactorySnapshot, NodeHistory
from factoryctl.live.services_base import (
    ALARMS_KEPT,
    ConfiguredServices,
    FollowedStore,
    assemble_snapshot,
    cap_reason,
    events_kept,
    node_events,
    recent_events,
    stored_jobs,
)
from factoryctl.model.telemetry import NodeSample
from factoryctl.stale_code import StaleCode
from factoryctl.store.who import login_name
from factoryctl.telemetry.health import (
    ThermalEpisodes,
    silent_for_down_s,
)
from factoryctl.telemetry.links import STALL_MIN_S, Backoff, transport_connector

if TYPE_CHECKING:
    from factoryctl.power.limits import LimitChange
    from factoryctl.store.rows import Event

log = logging.getLogger("factoryctl.live")

#: The state a node shows until its first sample or failure (never waited for: rows appear as nodes answer).
CONNECTING = "connecting"
#: Delays between attempts: the controller's rule (an interval, doubling up to `controller.reconnect_max_s`).
reconnect_backoff: Callable[[FactoryConfig], Backoff] = Backoff.for_factory
#: How long `close()` waits for the nodes still connecting (a mute SSH node would hold up quitting for its timeout).
CONNECTING_GRACE_S = 0.5
#: How many of a node's stored events of one kind are compared with a condition its first sample shows.
STORED_EVENTS_CHECKED = 100
#: How often the judge looks for nodes due: a silent one degrades, then goes down, with no sample or snapshot to say
#: so. Only a node whose silence may change its state by now is judged (`PolledNode.due_at`): judging all 2,000
#: every time took 14 % of a core while nothing changed.
JUDGE_EVERY_S = 0.1


class PolledServices(ConfiguredServices):
    """`DashboardServices` over live agent sessions, one per node of `target` (all nodes when None)."""

    def __init__(
        self,
        config: FactoryConfig,
        target: str | None = None,
        connect_timeout_s: float = 15.0,
        use_store: bool = True,
    ) -> None:
        self.config = config
        self.specs = config.resolve_target(target)
        self.connect_timeout_s = connect_timeout_s
        self.stop_event = threading.Event()
        #: The clock nodes are judged on (a test judging by hand moves its own).
        self.monotonic: Callable[[], float] = time.monotonic
        self.history = RecentHistory(config.interval_s)
        self.grid = GridPrice(config)
        #: This session's events for the panel, the newest `events_kept` (enough to fold a burst of every node: kept
        #: 500 at a time, 1,984 nodes going down read "500 nodes down"); its errors apart too, `ALARMS_KEPT` of them.
        self._events: deque[DashboardEvent] = deque(maxlen=events_kept(len(self.specs)))
        #: The time of the newest event the full `_events` let go of (None: none yet): a burst near it counts `N+`.
        self._events_cut_at: float | None = None
        #: The newest errors seen (a GPU lost, an XID) again: so many warnings after them never push them out.
        self._alarms: deque[DashboardEvent] = deque(maxlen=ALARMS_KEPT)
        self.thermal = ThermalEpisodes()  # one thermal event per episode, as the controller logs them
        self._events_lock = threading.Lock()
        self._drained: dict[str, str] = {}
        self._store: FollowedStore | None = self._open_store() if use_store else None
        self._jobs = JobsFeed()
        #: factoryctl's files changed under this dashboard (an upgrade): said once, and no node is judged by it.
        self.stale = StaleCode("dashboard", self._said_stale)
        connect = self.stale.noticing(transport_connector(config, connect_timeout_s, self.specs, self.stop_event))
        self._nodes = {spec.name: PolledNode(spec, self, connect, reconnect_backoff(config)) for spec in self.specs}
        self._judge_thread = threading.Thread(target=self._judge_every_node, name="dash-judge", daemon=True)
        self._started = False
        self._user = login_name()

    # ------------------------------------------------------------------ lifecycle

    def _open_store(self) -> FollowedStore | None:
        """The store, followed if its file is deleted or replaced (`FollowedStore`); None when it cannot be opened."""
        from factoryctl.store import open_store

        path = self.config.store_path
        try:
            return FollowedStore(path, lambda: open_store(path), self._store_moved)
        except (FactoryError, OSError):
            return None

    def _said_stale(self, detail: str) -> None:
        """The events panel's line (an error: it outlasts the warnings) and the log's, once."""
        log.error("%s", detail)
        self.add_event(DashboardEvent(time.time(), None, "source", self.stale.message, "error"))

    def _store_moved(self, sentence: str) -> None:
        self.add_event(DashboardEvent(time.time(), None, "store", sentence, "warning"))

    @property
    def persistent(self) -> bool:
        """Whether drains and power changes are written to the store (else kept in memory for this session)."""
        return self._store is not None

    def start(self) -> None:
        """Start every node's link and the judge (the first `snapshot()` does it when not called)."""
        if not self._started:
            self._started = True
            for node in self._nodes.values():
                node.link.start()
            self._judge_thread.start()

    def seed(self, shown: Iterable[NodeSample]) -> None:
        """Start each node from the sample the dashboard showed last (before `start`): see `PolledNode.seed`.

        A controller handing back must not turn every node `connecting` (and a down one up-to-be) for a while:
        docs/dashboard.md promises that a node keeps its state when a controller takes over or hands back.
        """
        now_mono = self.monotonic()
        for sample in shown:
            state = self._nodes.get(sample.node)
            if state is not None:
                state.seed(sample, now_mono)

    def _judge_every_node(self) -> None:
        """Judge the nodes whose silence may have changed their state by now (`PolledNode.due_at`)."""
        while not self.stop_event.wait(JUDGE_EVERY_S):
            now_mono = self.monotonic()
            for node in self._nodes.values():
                if node.due_at <= now_mono:
                    node.judge()

    def close(self) -> None:
        """Stop the links and the agents, without waiting out a node still connecting.

        Connected links stop their agents within one shared budget. The links still connecting (a mute SSH node)
        get `CONNECTING_GRACE_S` between them: their daemon threads end on their own when the connect returns or
        times out, starting nothing more (the connector sees `stop_event`) and closing what they opened.
        """
        self.stop_event.set()
        for node in self._nodes.values():
            node.link.stop()
        if self._started:
            now = time.monotonic()
            deadline, grace = now + 5.0, now + CONNECTING_GRACE_S  # one budget for all, one grace for the connecting
            for node in self._nodes.values():
                node.link.join(max(0.0, (grace if node.connecting else deadline) - time.monotonic()))
            self._judge_thread.join(max(0.0, deadline - time.monotonic()))
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------ reading

    @property
    def down_after_s(self) -> float:
        """Silence after which a node is judged down (`silent_for_down_s`, the controller's threshold)."""
        return silent_for_down_s(self.interval_s)

    @property
    def link_stall_s(self) -> float:
        """Silence after which a node's session is torn down and rebuilt: judged down, and at least STALL_MIN_S.

        As the controller's links: a node that is merely slow for a few seconds (a loaded node, a GC pause, a short
        network blip) keeps its agent instead of paying a new SSH connection and agent start, with backoff.
        """
        return max(self.down_after_s, STALL_MIN_S)

    def snapshot(self) -> FactorySnapshot:
        """The latest sample of every node, never waiting on a slow one: a node not answered yet is `connecting`."""
        self.start()
        now = time.time()
        nodes = tuple(node.judge(now) for node in self._nodes.values())  # each node's state computed once
        cuts: list[float] = []
        events = self._all_events(now, cuts)
        snapshot = assemble_snapshot(
            self.config,
            self.specs,
            now,
            nodes,
            frozenset(self._drained_names()),
            events,
            self.history,
            self.grid,
            {name: len(node.latest.gpus) for name, node in self._nodes.items() if node.latest is not None},
            max(cuts, default=None),
            self._stored_jobs(now),
        )
        if self.stale.failure is None:
            return snapshot
        return dataclasses.replace(snapshot, code_changed=self.stale.message)

    def _stored_jobs(self, now: float) -> JobsRead | None:
        """The store's jobs (None: no store: the panel says so)."""
        if self._store is None:
            return None
        with contextlib.suppress(FactoryError):
            return stored_jobs(self._jobs, self._store.get(), now)
        return None

    def _drained_names(self) -> set[str]:
        if self._store is not None:
            with contextlib.suppress(FactoryError):
                return set(self._store.get().drained_nodes())
        return set(self._drained)

    def _all_events(self, now: float, cuts: list[float] | None = None) -> tuple[DashboardEvent, ...]:
        """This session's events and the store's, oldest first; the times either was cut at go into `cuts`."""
        found: list[float | None] = []
        with self._events_lock:
            local = list(self._events)
            kept = {id(event) for event in local}
            local += [event for event in self._alarms if id(event) not in kept]
            found.append(self._events_cut_at)
        if self._store is not None:
            with contextlib.suppress(FactoryError):
                stored, stored_cut_at = recent_events(self._store.get(), now, [s.name for s in self.specs])
                local += stored
                found.append(stored_cut_at)
        if cuts is not None:
            cuts += [at for at in found if at is not None]
        return tuple(sorted(local, key=lambda e: e.time))

    def _node_events(self, node: str) -> tuple[DashboardEvent, ...]:
        """The node's own events: this session's (kept ones) and the store's, asked for that node alone."""
        with self._events_lock:
            local = [e for e in dict.fromkeys([*self._events, *self._alarms]) if e.node == node]
        if self._store is not None:
            with contextlib.suppress(FactoryError):
                local += node_events(self._store.get(), time.time(), node)
        return tuple(sorted(local, key=lambda e: e.time))

    def stored_already(self, event: Event) -> bool:
        """Whether the store already holds this event: a condition a controller logged before this dashboard opened.

        A node's first sample here shows it again (an ECC error); announced, it read as new, at this dashboard's start.
        """
        if self._store is None or event.node is None:
            return False
        with contextlib.suppress(FactoryError):
            stored = self._store.get().events(0.0, [event.node], limit=STORED_EVENTS_CHECKED, kind=event.kind)
            return any(e.message == event.message and e.gpu == event.gpu for e in stored)
        return False

    def add_event(self, event: DashboardEvent) -> None:
        """Record an event seen by this dashboard."""
        with self._events_lock:
            if len(self._events) == self._events.maxlen:  # the oldest goes: what is kept is cut at it
                self._events_cut_at = max(self._events[0].time, self._events_cut_at or 0.0)
            self._events.append(event)
            if event.severity == "error":
                self._alarms.append(event)

    def node_history(self, node: str) -> NodeHistory:
        """The node's per-GPU history: its last 600 samples (10 minutes at 1 s; fewer if the dashboard opened later).

        With its own events (`_node_events`).
        """
        return dataclasses.replace(self.history.node(node), events=self._node_events(node))

    # ------------------------------------------------------------------ actions

    def _node(self, node: str) -> PolledNode:
        state = self._nodes.get(node)
        if state is None:
            raise UsageError(f"{node} is not watched by this dashboard.", None)
        return state

    def drain(self, node: str, reason: str) -> None:
        """Drain a node: the store's flag (and its event) when there is a store, else this session's memory."""
        self._node(node)
        if self._store is not None:  # the file others read now, never a deleted one; a connection of its own
            with self._store.for_writing() as store:  # the snapshot's reads never wait behind this write
                store.set_drained([node], True, reason, self._user)
            return
        self._drained[node] = reason
        self.add_event(DashboardEvent(time.time(), node, "drain", f"drained by {self._user}: {reason}"))

    def resume(self, node: str) -> None:
        """Undo a drain."""
        self._node(node)
        if self._store is not None:
            with self._store.for_writing() as store:
                store.set_drained([node], False, None, self._user)
            return
        self._drained.pop(node, None)
        self.add_event(DashboardEvent(time.time(), node, "resume", f"resumed by {self._user}"))

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        """Cap every GPU of `node` (or those of `gpus`) at `watts`, clamped to each GPU's range; audited.

        A cap the driver fails part-way raises its error, naming the GPUs it had already changed: those are audited
        (and in this session's events) first, as `power set` records them.
        """
        from factoryctl.power.limits import limit_changes, partly_changed
        from factoryctl.transport.session import PartlyDone

        state = self._node(node)
        session = state.session  # the link's live session, read under its lock; None while not connected
        if session is None or state.failure is not None:
            raise NodeError(node, "agent", f"{node} is not connected: no power cap was set.", "wait until it is up.")
        if state.shown == "down":  # connected, but judged down (silent): it would not answer
            raise NodeError(node, "timeout", "is down (silent): no power cap was set.", "wait until it is up.")
        try:
            with state.asking_cap():  # a node that goes down meanwhile ends it (`PolledNode.judge`)
                answers: list[dict[str, Any]] = session.set_power_limit(watts, gpus, clamp=True)
        except PartlyDone as failed:
            changes, error = partly_changed(failed)
            self._record_cap(changes, watts)
            raise error from None
        self._record_cap(limit_changes(node, answers), watts)
        return answers

    def _record_cap(self, changes: list[LimitChange], watts: float) -> None:
        """The audit entries of a dashboard cap (when there is a store) and its event; nothing when nothing changed.

        A new limit the node could not read back (null) is said so in the event, never left out as "power cap ".
        """
        from factoryctl.power.limits import record_audit

        if not changes:
            return
        if self._store is not None:
            with self._store.for_writing() as store:
                record_audit(store, changes, "set", cap_reason(watts))
        enforced = sorted({c.enforced_w for c in changes if c.enforced_w is not None})
        unknown = sum(1 for c in changes if c.enforced_w is None)
        said = f"power cap {', '.join(f'{w:.0f} W' for w in enforced) or 'set'}"
        said += " (clamped)" if any(c.clamped for c in changes) else ""
        if unknown:  # a GPU lost right after its set, or a read-back that failed: not a cap of 0 W
            whose = "" if unknown == len(changes) else f" of {unknown} of {len(changes)} GPUs"
            said += f"; the new limit{whose} could not be read back"
        self.add_event(DashboardEvent(time.time(), changes[0].node, "power_limit", said))
