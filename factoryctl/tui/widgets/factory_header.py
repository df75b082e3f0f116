"""The dashboard's header: the factory's name, node states, GPUs busy, power against the budget, grid and queue.

The data's age is judged against the app's wall clock and redrawn every second on its own timer, so a source that
stalls (no new snapshot arrives) still shows `data N s old` instead of its last time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import RenderableType
from textual.widget import Widget

from factoryctl.live.services import FactorySnapshot
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.view import FactorySummary, summarize


class FactoryHeader(Widget):
    """Three summary lines, redrawn from each snapshot."""

    DEFAULT_CSS = """
    FactoryHeader { height: 3; padding: 0 1; }
    """

    #: How often the header redraws without a new snapshot (so the data's age keeps counting).
    TICK_S = 1.0

    def __init__(self, factory: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.factory = factory
        self.summary: FactorySummary | None = None

    def on_mount(self) -> None:
        """Redraw every second: the age of the newest sample grows even when no snapshot arrives."""
        self.set_interval(self.TICK_S, self.refresh, name="data-age")

    @property
    def clock(self) -> Callable[[], float]:
        """The app's wall clock (`DashboardApp.clock`), or the system's outside the dashboard."""
        clock: Callable[[], float] = getattr(self.app, "clock", time.time)
        return clock

    def show(self, snapshot: FactorySnapshot) -> None:
        """Summarize a new snapshot."""
        self.summary = summarize(snapshot)
        self.refresh()

    def render(self) -> RenderableType:
        """The summary renderable, its data's age measured now."""
        return FactorySummaryRenderable(self.summary, self.factory, self.clock())
