"""`AutoServices`: follow the controller. Its store while it runs, the dashboard's own collector when it does not.

A controller started after the dashboard opened takes over (the dashboard's agent sessions close); one that stops
hands back to the embedded collector. The check is cheap (a lock probe and one query) and runs every few seconds
inside `snapshot()`, which the app already calls from a worker thread. Imports no Textual.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from factoryctl.config import FactoryConfig
from factoryctl.tui.services import DashboardEvent, DashboardServices, FactorySnapshot, NodeHistory
from factoryctl.tui.services_base import ConfiguredServices

#: How often to look for a controller starting or stopping.
CHECK_EVERY_S = 5.0


class AutoServices(ConfiguredServices):
    """`DashboardServices` that delegates to `StoreServices` or `PolledServices`, whichever fits right now."""

    def __init__(self, config: FactoryConfig, target: str | None = None, check_every_s: float = CHECK_EVERY_S) -> None:
        self.config = config
        self.target = target
        self.check_every_s = check_every_s
        self.specs = config.resolve_target(target)  # a bad TARGET fails here, before any session starts
        self._delegate: Any = None
        self.source = ""
        self._checked = 0.0
        self._notes: list[DashboardEvent] = []
        self._choose(first=True)

    def _choose(self, first: bool = False) -> None:
        from factoryctl.tui.services_store import controller_is_live

        self._checked = time.monotonic()
        wanted = "store" if controller_is_live(self.config) else "agents"
        if wanted == self.source:
            return
        old, self._delegate = self._delegate, self._open(wanted)
        self.source = wanted
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        if not first:
            text = (
                "a controller is running: reading its store"
                if wanted == "store"
                else "the controller stopped: collecting from the nodes directly"
            )
            self._notes.append(DashboardEvent(time.time(), None, "source", text, "warning"))

    def _open(self, source: str) -> DashboardServices:
        if source == "store":
            from factoryctl.tui.services_store import StoreServices

            return StoreServices(self.config, self.target)
        from factoryctl.tui.services_polled import PolledServices

        return PolledServices(self.config, self.target)

    @property
    def delegate(self) -> DashboardServices:
        """The services in use now."""
        return self._delegate  # type: ignore[no-any-return]

    def snapshot(self) -> FactorySnapshot:
        """The delegate's snapshot, after switching source if the controller started or stopped."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self._choose()
        snapshot = self.delegate.snapshot()
        if not self._notes:
            return snapshot
        from dataclasses import replace

        events = tuple(sorted((*snapshot.events, *self._notes), key=lambda e: e.time))
        return replace(snapshot, events=events)

    def node_history(self, node: str) -> NodeHistory:
        """From the delegate."""
        return self.delegate.node_history(node)

    def drain(self, node: str, reason: str) -> None:
        """Through the delegate (both write the store)."""
        self.delegate.drain(node, reason)

    def resume(self, node: str) -> None:
        """Through the delegate."""
        self.delegate.resume(node)

    def set_power_cap(self, node: str, watts: float) -> list[dict[str, Any]]:
        """Through the delegate (its session, or one audited request while a controller runs)."""
        return self.delegate.set_power_cap(node, watts)

    def close(self) -> None:
        """Close the delegate."""
        self.delegate.close()
