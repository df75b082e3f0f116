"""`AutoServices`: follow the controller. Its store while it holds its lock, the dashboard's own collector when not.

A controller started after the dashboard opened takes over (the dashboard's agent sessions close); one that exits or
is killed (its lock is free) hands back to the embedded collector. The check is cheap (a lock probe and one query)
and runs every few seconds inside `snapshot()`, which the app already calls from a worker thread. Actions (drain,
power cap) run on other worker threads at the same time: a source being replaced is closed only once no call is
using it. Imports no Textual.

The lock, not the store's freshness, decides: a late controller (overloaded, stopped, hung) still holds its lock and
its sessions, so it is reported late (its pid, how long since its last write) and its rows age to down
(`StoreServices`); only a free lock starts a collector, so no second set of sessions is opened against its nodes.
One exception: while a controller that has just started has not yet stored every node of the target, the
collector keeps going, for `STARTUP_GRACE_S` at most from when it took its lock (so one hung from the start still
stops the dashboard's sessions; counted from when each dashboard first saw it, every dashboard opened on a controller
with no node up ran its own collector for 30 s). While no store exists there is nothing to read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.live.history import RecentHistory
from factoryctl.live.services import DashboardEvent, DashboardServices, FactorySnapshot, LateController, NodeHistory
from factoryctl.live.services_base import ConfiguredServices
from factoryctl.model.telemetry import NodeSample

if TYPE_CHECKING:
    from factoryctl.live.services_store import ControllerView

#: How often to look for a controller starting or stopping.
CHECK_EVERY_S = 5.0
#: How long a controller that has just taken the lock may take to store its first sample before the dashboard, if it
#: is collecting, stops its own sessions and reads the store anyway (a controller hung from the start is late).
STARTUP_GRACE_S = 30.0
#: Source-change notes kept for the events panel (a flapping controller must not grow them without end).
MAX_NOTES = 20


class AutoServices(ConfiguredServices):
    """`DashboardServices` that delegates to `StoreServices` or `PolledServices`, whichever fits right now."""

    def __init__(
        self,
        config: FactoryConfig,
        target: str | None = None,
        check_every_s: float = CHECK_EVERY_S,
        startup_grace_s: float = STARTUP_GRACE_S,
    ) -> None:
        self.config = config
        self.target = target
        self.check_every_s = check_every_s
        self.startup_grace_s = startup_grace_s
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
        #: The lock holder last seen, and since when (monotonic): its start-up grace counts from then when the lock
        #: file's time cannot be read (`ControllerView.locked_at`, which it counts from otherwise).
        self._holder: tuple[int, float] | None = None
        #: The controller read while it is late (None while it keeps up, or none is read): shown on every snapshot.
        self._late: ControllerView | None = None
        self._choose(first=True)

    def _choose(self, first: bool = False) -> None:
        from factoryctl.live.services_store import controller_view

        self._checked = time.monotonic()
        view = controller_view(self.config)
        wanted = self._wanted(view)
        if wanted != self.source:
            self._switch(wanted, view, first)
        self._watch_late(view)
        self._tell_store(view)

    def _wanted(self, view: ControllerView) -> str:
        """`store` while a live process holds the lock, `agents` once none does (a starting one aside: see module)."""
        if view.pid is None:
            self._holder = None
            return "agents"
        if self._holder is None or self._holder[0] != view.pid:
            self._holder = (view.pid, self._checked)
        if not self.config.store_path.exists():
            return "agents"  # it has not even created its store: there is nothing to read
        if view.locked_at is not None:
            starting = time.time() - view.locked_at < self.startup_grace_s
        else:
            starting = self._checked - self._holder[1] < self.startup_grace_s
        collecting = self.source == "agents" or (not self.source and view.stored_at is None)
        if (
            collecting
            and starting
            and (view.late_for(time.time(), self.interval_s) is not None or self._unjudged(view))
        ):
            return "agents"  # it has not stored every node yet: keep collecting until it has
        return "store"

    def _unjudged(self, view: ControllerView) -> bool:
        """Whether the starting controller has yet to store some node of the target: its row would read `down`."""
        from factoryctl.live.services_store import unjudged_nodes

        if view.started_at is None:  # it stored no `controller_start`: its rows cannot be told from its predecessor's
            return False
        return bool(unjudged_nodes(self.config, [spec.name for spec in self.specs], view.started_at))

    def _tell_store(self, view: ControllerView) -> None:
        """The store's reader shows the rows a controller starting now has not judged yet as `connecting`."""
        from factoryctl.live.services_store import StoreServices

        delegate = self._delegate
        if isinstance(delegate, StoreServices):
            delegate.controller_started_at = view.started_at
            delegate.startup_grace_s = self.startup_grace_s

    def _switch(self, wanted: str, view: ControllerView, first: bool) -> None:
        """Open `wanted`, make it the delegate, and retire the old one (closed once no call uses it)."""
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
                f"a controller is running ({_pid(view)}): reading its store"
                if wanted == "store"
                else "no controller holds the store's lock (it exited or was killed): collecting from the nodes directly"
            )
            self._notes.append(DashboardEvent(time.time(), None, "source", text, "warning"))

    def _watch_late(self, view: ControllerView) -> None:
        """Note a controller read from its store falling behind, or catching up, and keep its latest view."""
        reading = self.source == "store"
        was_late, self._late = self._late, None
        if reading and view.late_for(time.time(), self.interval_s) is not None:
            self._late = view
        elif reading and was_late is not None:
            text = f"the controller ({_pid(view)}) writes its store again"
            self._notes.append(DashboardEvent(time.time(), None, "source", text, "info"))

    def _late_note(self, now: float) -> DashboardEvent | None:
        """The events panel's line for a late controller, its age as of `now` (None while it keeps up)."""
        view = self._late
        if view is None:
            return None
        if view.stored_at is None:
            since, text = now, "no sample stored yet"
        else:
            since, text = view.stored_at, f"nothing stored for {now - view.stored_at:.0f} s"
        message = (
            f"the controller ({_pid(view)}) is late: {text}; it still holds its lock, so its store is shown "
            "(rows it no longer refreshes show as stale) and the dashboard does not collect itself until the lock is free"
        )
        return DashboardEvent(since, None, "source", message, "warning")

    def _seed(self, fresh: DashboardServices) -> None:
        """Hand the last snapshot's node states to a fresh embedded collector (a down node stays down, an up one up)."""
        from factoryctl.live.services_polled import PolledServices

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
            from factoryctl.live.services_store import StoreServices

            return StoreServices(self.config, self.target)
        from factoryctl.live.services_polled import PolledServices

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
        late = self._late_note(snapshot.time)
        notes = (*self._notes, late) if late is not None else tuple(self._notes)
        if not notes:
            return snapshot
        from dataclasses import replace

        events = tuple(sorted((*snapshot.events, *notes), key=lambda e: e.time))
        view = self._late
        late_controller = LateController(view.pid or 0, view.stored_at) if view is not None else None
        return replace(snapshot, events=events, late_controller=late_controller)

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


def _pid(view: ControllerView) -> str:
    """`pid N` of the lock holder, as the events panel names it."""
    return f"pid {view.pid}" if view.pid else "pid unknown"
