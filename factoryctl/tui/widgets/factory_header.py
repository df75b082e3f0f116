"""The dashboard's header: the factory's name, node states, GPUs busy, power against the budget, grid and queue."""

from __future__ import annotations

import time

from rich.console import RenderableType
from textual.widget import Widget

from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.services import FactorySnapshot
from factoryctl.tui.view import FactorySummary, summarize


class FactoryHeader(Widget):
    """Three summary lines, redrawn from each snapshot."""

    DEFAULT_CSS = """
    FactoryHeader { height: 3; padding: 0 1; }
    """

    def __init__(self, factory: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.factory = factory
        self.summary: FactorySummary | None = None
        self._now: float | None = None

    def show(self, snapshot: FactorySnapshot) -> None:
        """Summarize a new snapshot."""
        self.summary = summarize(snapshot)
        self._now = snapshot.time or time.time()
        self.refresh()

    def render(self) -> RenderableType:
        """The summary renderable."""
        return FactorySummaryRenderable(self.summary, self.factory, self._now)
