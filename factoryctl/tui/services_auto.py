"""`AutoServices`: follow the controller. Its store while it runs, the dashboard's own collector when it does not.

A controller started after the dashboard opened takes over (the dashboard's agent sessions close); one that stops
hands back to the embedded collector. The check is cheap (a lock probe and one query) and runs every few seconds
inside `snapshot()`, which the app already calls from a worker thread. Actions (drain, power cap) run on other
worker threads at the same time: a source being replaced is closed only once no call is using it. Imports no
Textual.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from factoryctl.config import FactoryConfig
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.history import RecentHistory
from factoryctl.tui.services import DashboardEvent, DashboardServices, FactorySnapshot, NodeHistory
from factoryctl.tui.services_base import ConfiguredServices

#: How often to look for a controller starting or stopping.
CHECK_EVERY_S = 5.0
#: Source-change notes kept for the events panel (a flapping controller must not grow them without end).
MAX_NOTES = 20


class AutoServices(ConfiguredServices):
    """`DashboardServices` that delegates to `StoreServices` or `PolledServices`, whichever fits right now."""

    def __init__(self, config: FactoryConfig, target: str | None = None, check_every_s: float = CHECK_EVERY_S) -> None:
        self.config = config
        self.target = target
        self.check_every_s = check_every_s
        self.specs = config.resolve_target(target)  # a bad TARGET fails here, before any session starts
        self._delegate: DashboardServices | None = None
        self.source = ""
        self._checked = 0.0
        self._notes: deque[DashboardEvent] = deque(maxlen=MAX_NOTES)
        self._lock = threading.Lock()
        self._calls = 0  # calls in progress on a delegate
        self._retired: list[DashboardServices] = []  # replaced delegates, closed once no call uses them
        self._closed = False  # after close(), a source opened late (a snapshot worker mid-switch) is closed at once
        #: The nodes of the last snapshot: a collector taking back over starts from them, not from `connecting`.
        self._last_nodes: tuple[NodeSample, ...] = ()
        self._choose(first=True)

    def _choose(self, first: bool = False) -> None:
        from factoryctl.tui.services_store import controller_is_live

        self._checked = time.monotonic()
        wanted = "store" if controller_is_live(self.config) else "agents"
        if wanted == self.source:
            return
        fresh = self._open(wanted)
        if wanted == "agents":
            self._seed(fresh)
        old_history = getattr(self._delegate, "history", None)
        if wanted == "agents" and isinstance(old_history, RecentHistory):  # a hand-back keeps the hour's power
            fresh_history = getattr(fresh, "history", None)
            if isinstance(fresh_history, RecentHistory):
                fresh_history.seed_factory(old_history.factory_series())
        with self._lock:
            if self._closed:
                self._retired.append(fresh)  # the dashboard quit while this one opened: nothing may start in it
                old = None
            else:
                old, self._delegate = self._delegate, fresh
                self.source = wanted
            if old is not None:
                self._retired.append(old)
        self._close_retired()
        if not first:
            text = (
                "a controller is running: reading its store"
                if wanted == "store"
                else "the controller stopped: collecting from the nodes directly"
            )
            self._notes.append(DashboardEvent(time.time(), None, "source", text, "warning"))

    def _seed(self, fresh: DashboardServices) -> None:
        """Hand the last snapshot's node states to a fresh embedded collector (a down node stays down, an up one up)."""
        from factoryctl.tui.services_polled import PolledServices

        if isinstance(fresh, PolledServices) and self._last_nodes:
            fresh.seed(self._last_nodes)

    def _close_retired(self) -> None:
        """Close the replaced delegates if no call is using any delegate now."""
        with self._lock:
            if self._calls:
                return
            retired, self._retired = self._retired, []
        for old in retired:
            with contextlib.suppress(Exception):
                old.close()

    @contextlib.contextmanager
    def _using(self) -> Iterator[DashboardServices]:
        """The delegate in use now, kept open for the duration of one call."""
        with self._lock:
            delegate = self.delegate
            self._calls += 1
        try:
            yield delegate
        finally:
            with self._lock:
                self._calls -= 1
            self._close_retired()

    def _open(self, source: str) -> DashboardServices:
        if source == "store":
            from factoryctl.tui.services_store import StoreServices

            return StoreServices(self.config, self.target)
        from factoryctl.tui.services_polled import PolledServices

        return PolledServices(self.config, self.target)

    @property
    def delegate(self) -> DashboardServices:
        """The services in use now."""
        if self._delegate is None:
            raise RuntimeError("AutoServices has no source yet")
        return self._delegate

    def snapshot(self) -> FactorySnapshot:
        """The delegate's snapshot, after switching source if the controller started or stopped."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self._choose()
        with self._using() as delegate:
            snapshot = delegate.snapshot()
        self._last_nodes = snapshot.nodes
        if not self._notes:
            return snapshot
        from dataclasses import replace

        events = tuple(sorted((*snapshot.events, *self._notes), key=lambda e: e.time))
        return replace(snapshot, events=events)

    def node_history(self, node: str) -> NodeHistory:
        """From the delegate."""
        with self._using() as delegate:
            return delegate.node_history(node)

    def drain(self, node: str, reason: str) -> None:
        """Through the delegate (both write the store)."""
        with self._using() as delegate:
            delegate.drain(node, reason)

    def resume(self, node: str) -> None:
        """Through the delegate."""
        with self._using() as delegate:
            delegate.resume(node)

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        """Through the delegate (its session, or one audited request while a controller runs)."""
        with self._using() as delegate:
            return delegate.set_power_cap(node, watts, gpus)

    def close(self) -> None:
        """Close the delegate and any replaced one (the dashboard is quitting: calls still running are abandoned)."""
        with self._lock:
            self._closed = True
            retired, self._retired = self._retired, []
        for old in retired:
            with contextlib.suppress(Exception):
                old.close()
        self.delegate.close()
