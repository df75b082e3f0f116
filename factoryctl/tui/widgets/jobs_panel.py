"""Running gangs and the queue; says so plainly until the scheduler feeds the dashboard."""

from __future__ import annotations

from rich.console import RenderableType
from textual.content import Content
from textual.widget import Widget

from factoryctl.live.services import JobLine
from factoryctl.tui.renderables.feed_lists import JobsRenderable
from factoryctl.tui.view import jobs_summary


class JobsPanel(Widget):
    """The jobs of a snapshot (None: no scheduler yet)."""

    DEFAULT_CSS = """
    JobsPanel { border: round $primary-darken-1; padding: 0 1; height: 1fr; border-title-color: $text; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: tuple[JobLine, ...] | None = None
        self.border_title = "jobs"

    def show(self, jobs: tuple[JobLine, ...] | None) -> None:
        """Show these jobs."""
        if jobs != self.jobs:
            self.jobs = jobs
            summary = jobs_summary(jobs)
            self.border_title = Content(f"jobs: {summary}" if summary else "jobs")
            self.refresh()

    def render(self) -> RenderableType:
        """Running first, as many as fit."""
        return JobsRenderable(self.jobs, limit=max(1, self.size.height))
