"""Health and state events (node down/up, ECC, drains, power-limit changes), newest first."""

from __future__ import annotations

from rich.console import RenderableType
from textual.content import Content
from textual.widget import Widget

from factoryctl.live.services import DashboardEvent
from factoryctl.tui.renderables.feed_lists import EventsRenderable


class EventsPanel(Widget):
    """The events list of a snapshot, optionally of one node only."""

    DEFAULT_CSS = """
    EventsPanel { border: round $primary-darken-1; padding: 0 1; height: 1fr; border-title-color: $text; }
    """

    def __init__(self, node: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.node = node
        self.events: tuple[DashboardEvent, ...] = ()
        self.border_title = Content("events" if node is None else f"events of {node}")  # a name, never markup

    def show(self, events: tuple[DashboardEvent, ...]) -> None:
        """Show these events."""
        if events != self.events:
            self.events = events
            self.refresh()

    def render(self) -> RenderableType:
        """Newest first, as many as fit."""
        return EventsRenderable(self.events, limit=max(1, self.size.height), node=self.node)
