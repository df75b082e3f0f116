"""`PolledServices`: the dashboard's own embedded collector, for when no controller writes the store.

One long-lived agent session per node (local subprocess or one SSH connection), each streaming samples at the
factory's interval from its own thread, reconnecting with backoff. `snapshot()` only reads what the streams last
delivered, so it returns at once however slow a node is; a node whose stream breaks shows as down at the next
snapshot, and one that goes quiet shows as degraded, then down; each change of state is an event (node_degraded,
node_down, node_up) whatever its cause, and a node that has not answered yet shows as connecting (never waited for).
Drains and power-limit changes go through the store
(drained flag, events, audit log) when it can be opened, else they live in memory for this session.
Imports no Textual: the CLI, a benchmark or a test can drive it headless.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, NodeError, UsageError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.who import login_name
from factoryctl.telemetry.health import ThermalEpisodes
from factoryctl.transport.fanout import as_node_error
from factoryctl.tui.grid import GridPrice
from factoryctl.tui.history import RecentHistory
from factoryctl.tui.services import DashboardEvent, FactorySnapshot, NodeHistory
from factoryctl.tui.services_base import ConfiguredServices, assemble_snapshot, dashboard_event

if TYPE_CHECKING:
    from factoryctl.store.sqlite import Store
    from factoryctl.transport.base import NodeTransport
    from factoryctl.transport.session import AgentSession

#: The state a node shows until its first sample or failure (never waited for: rows appear as nodes answer).
CONNECTING = "connecting"
#: The event of each change of state, and its severity.
STATE_EVENTS = {"up": ("node_up", "info"), "degraded": ("node_degraded", "warning"), "down": ("node_down", "error")}
RECONNECT_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
#: How long `close()` waits for a node still connecting (a mute SSH node would hold up quitting for its timeout).
CONNECTING_GRACE_S = 0.5


class _NodeLink:
    """One node's agent session and the thread that keeps it streaming."""

    def __init__(self, spec: NodeSpec, owner: PolledServices) -> None:
        self.spec = spec
        self.owner = owner
        self.session: AgentSession | None = None
        self.transport: NodeTransport | None = None
        self.latest: NodeSample | None = None
        self.latest_mono = 0.0
        self.failure: NodeError | None = None
        self.shown = CONNECTING  # the state last judged (and announced by an event)
        self.connecting = False  # inside `_connect`: `close()` does not wait for it
        #: Guards the fields above; re-entrant because `judge` holds it while `sample` takes it again.
        self.lock = threading.RLock()
        self.thread = threading.Thread(target=self._run, name=f"dash-{spec.name}", daemon=True)

    def _run(self) -> None:
        attempt = 0
        stop = self.owner.stop_event
        while not stop.is_set():
            try:
                session = self._connect()
                if session is None:
                    continue  # closed while connecting: `finally` releases what was opened
                attempt = 0
                while not stop.is_set() and session.failure is None:
                    stop.wait(0.1)
                    self.judge()  # a silent agent degrades, then goes down, with no sample to say so
                if session.failure is not None:
                    self._fail(session.failure)
            except Exception as exc:
                self._fail(as_node_error(self.spec.name, exc))
            finally:
                self._disconnect()
            if not stop.is_set():
                stop.wait(RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
                attempt += 1

    def _connect(self) -> AgentSession | None:
        """Open the transport, start the agent, stream; None when `close()` came meanwhile (nothing more started)."""
        from factoryctl.telemetry.poll import open_transport

        stop, timeout = self.owner.stop_event, self.owner.connect_timeout_s
        self.connecting = True
        try:
            self.transport = open_transport(self.spec, self.owner.config, timeout)
            if stop.is_set():
                return None
            self.session = session = self.transport.start_agent(timeout)
            if stop.is_set():
                return None
            slow = self.owner.config.settings.controller.slow_interval_s
            session.stream(self.owner.interval_s, self._on_sample, timeout=timeout, slow_interval_s=slow)
            return session
        finally:
            self.connecting = False

    def _on_sample(self, sample: NodeSample) -> None:
        from factoryctl.telemetry.health import gpu_events

        with self.lock:
            before, self.latest = self.latest, sample
            self.latest_mono = time.monotonic()
            self.failure = None
        self.owner.history.record_node(sample)
        found = self.owner.thermal.keep(gpu_events(before, sample), sample)
        for event in found:  # ECC errors, lost GPUs, thermal slowdown: as the controller sees them
            self.owner.add_event(dashboard_event(event))
        self.judge()

    def _fail(self, error: NodeError) -> None:
        with self.lock:
            self.failure = error
        self.judge()

    def judge(self, now: float | None = None) -> NodeSample:
        """The node's sample now, compared with the state last judged: each change is an event (not the first answer).

        The link thread, its samples and the UI's snapshots all judge: the state is computed, swapped and announced
        under one lock, so an older verdict can never overwrite a newer one (which announced one outage twice).
        """
        with self.lock:
            sample = self.sample(time.time() if now is None else now, self.owner.stale_after_s, self.owner.down_after_s)
            before, self.shown = self.shown, sample.state
            if sample.state == before or sample.state not in STATE_EVENTS:
                return sample
            if before == CONNECTING and sample.state == "up":
                return sample
            kind, severity = STATE_EVENTS[sample.state]
            text = "answers again" if sample.state == "up" else f"{sample.state}: {sample.message}"
            self.owner.add_event(DashboardEvent(time.time(), self.spec.name, kind, text, severity))
            return sample

    def _disconnect(self) -> None:
        session, transport = self.session, self.transport
        self.session = self.transport = None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close(timeout=1.0)
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    def sample(self, now: float, stale_after_s: float, down_after_s: float) -> NodeSample:
        """What the dashboard should show for this node now."""
        with self.lock:
            latest, failure, age = self.latest, self.failure, time.monotonic() - self.latest_mono
        name = self.spec.name
        if failure is not None:
            return NodeSample(node=name, time=now, state="down", error=failure.kind, message=failure.message)
        if latest is None:
            return NodeSample(node=name, time=now, state=CONNECTING, message="connecting…")
        if age > down_after_s:
            return NodeSample(
                node=name, time=latest.time, state="down", error="timeout", message=f"no sample for {age:.0f} s"
            )
        if age > stale_after_s:
            return NodeSample(
                node=name,
                time=latest.time,
                state="degraded",
                agent_version=latest.agent_version,
                backend=latest.backend,
                gpus=latest.gpus,
                host=latest.host,
                error="timeout",
                message=f"no sample for {age:.0f} s",
            )
        return latest


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
        self.history = RecentHistory(config.interval_s)
        self.grid = GridPrice(config)
        self._events: deque[DashboardEvent] = deque(maxlen=500)
        self.thermal = ThermalEpisodes()  # one thermal event per episode, as the controller logs them
        self._events_lock = threading.Lock()
        self._drained: dict[str, str] = {}
        self._store: Store | None = self._open_store() if use_store else None
        self._links = {spec.name: _NodeLink(spec, self) for spec in self.specs}
        self._started = False
        self._user = login_name()

    # ------------------------------------------------------------------ lifecycle

    def _open_store(self) -> Store | None:
        try:
            from factoryctl.store import open_store

            return open_store(self.config.store_path)
        except (FactoryError, OSError, ImportError):
            return None

    @property
    def persistent(self) -> bool:
        """Whether drains and power changes are written to the store (else kept in memory for this session)."""
        return self._store is not None

    def start(self) -> None:
        """Start every node's session thread (the first `snapshot()` does it when not called)."""
        if not self._started:
            self._started = True
            for link in self._links.values():
                link.thread.start()

    def close(self) -> None:
        """Stop the threads and the agents, without waiting out a node still connecting.

        Connected links stop their agents within one shared budget. A link still connecting (a mute SSH node) gets
        `CONNECTING_GRACE_S`: its daemon thread ends on its own when the connect returns or times out, starting
        nothing more and closing what it opened.
        """
        self.stop_event.set()
        deadline = time.monotonic() + 5.0  # one budget for all
        for link in self._links.values():
            if link.thread.is_alive():
                budget = deadline - time.monotonic()
                link.thread.join(timeout=max(0.0, min(budget, CONNECTING_GRACE_S) if link.connecting else budget))
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------ reading

    @property
    def stale_after_s(self) -> float:
        """A node silent for longer than this is degraded (2.5 intervals, at least 2 s, so down shows in 3 s)."""
        return max(2.0, 2.5 * self.interval_s)

    @property
    def down_after_s(self) -> float:
        """A node silent for longer than this is down."""
        return max(10.0, 10 * self.interval_s)

    def snapshot(self) -> FactorySnapshot:
        """The latest sample of every node, never waiting on a slow one: a node not answered yet is `connecting`."""
        self.start()
        now = time.time()
        nodes = tuple(link.judge(now) for link in self._links.values())  # each node's state computed once
        return assemble_snapshot(
            self.config,
            self.specs,
            now,
            nodes,
            frozenset(self._drained_names()),
            self._all_events(now),
            self.history,
            self.grid,
        )

    def _drained_names(self) -> set[str]:
        if self._store is not None:
            with contextlib.suppress(FactoryError):
                return set(self._store.drained_nodes())
        return set(self._drained)

    def _all_events(self, now: float) -> tuple[DashboardEvent, ...]:
        with self._events_lock:
            local = list(self._events)
        if self._store is not None:
            with contextlib.suppress(FactoryError):
                stored = self._store.events(now - 3600, [s.name for s in self.specs], limit=200)
                local += [dashboard_event(e) for e in stored]
        return tuple(sorted(local, key=lambda e: e.time))

    def add_event(self, event: DashboardEvent) -> None:
        """Record an event seen by this dashboard."""
        with self._events_lock:
            self._events.append(event)

    def node_history(self, node: str) -> NodeHistory:
        """The node's per-GPU history since this dashboard started."""
        return self.history.node(node)

    # ------------------------------------------------------------------ actions

    def _link(self, node: str) -> _NodeLink:
        link = self._links.get(node)
        if link is None:
            raise UsageError(f"{node} is not watched by this dashboard.", None)
        return link

    def drain(self, node: str, reason: str) -> None:
        """Drain a node: the store's flag (and its event) when there is a store, else this session's memory."""
        self._link(node)
        if self._store is not None:
            self._store.set_drained([node], True, reason, self._user)
            return
        self._drained[node] = reason
        self.add_event(DashboardEvent(time.time(), node, "drain", f"drained by {self._user}: {reason}"))

    def resume(self, node: str) -> None:
        """Undo a drain."""
        self._link(node)
        if self._store is not None:
            self._store.set_drained([node], False, None, self._user)
            return
        self._drained.pop(node, None)
        self.add_event(DashboardEvent(time.time(), node, "resume", f"resumed by {self._user}"))

    def set_power_cap(self, node: str, watts: float) -> list[dict[str, Any]]:
        """Cap every GPU of `node` at `watts`, clamped to each GPU's range; audited with before and after."""
        link = self._link(node)
        session = link.session
        if session is None or link.failure is not None:
            raise NodeError(node, "agent", f"{node} is not connected: no power cap was set.", "wait until it is up.")
        answers: list[dict[str, Any]] = session.set_power_limit(watts, None, clamp=True)
        now = time.time()
        if self._store is not None:
            from factoryctl.store.rows import AuditEntry

            self._store.add_audit(
                [
                    AuditEntry(
                        now,
                        node,
                        int(a["index"]),
                        "set",
                        a.get("before_w"),
                        a.get("enforced_w"),
                        bool(a.get("clamped")),
                        self._user,
                        f"dashboard: {watts:g} W requested",
                    )
                    for a in answers
                ]
            )
        enforced = sorted({float(a["enforced_w"]) for a in answers if a.get("enforced_w") is not None})
        clamped = " (clamped)" if any(a.get("clamped") for a in answers) else ""
        self.add_event(
            DashboardEvent(now, node, "power_limit", f"power cap {', '.join(f'{w:.0f} W' for w in enforced)}{clamped}")
        )
        return answers
