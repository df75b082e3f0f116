"""The jobs panel: running gangs, the queue and the jobs ended lately, read from the store (docs/jobs.md)."""

from __future__ import annotations

from rich.console import RenderableType
from textual.content import Content
from textual.widget import Widget

from factoryctl.live.services import JobLine
from factoryctl.tui.renderables.feed_lists import JobsRenderable
from factoryctl.tui.view import jobs_summary


class JobsPanel(Widget):
    """The jobs of a snapshot (None: no store to read them from)."""

    DEFAULT_CSS = """
    JobsPanel { border: round $primary-darken-1; padding: 0 1; height: 1fr; border-title-color: $text; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: tuple[JobLine, ...] | None = None
        self.counts: tuple[int | None, int | None] = (None, None)
        self.border_title = "jobs"

    def show(self, jobs: tuple[JobLine, ...] | None, running: int | None = None, waiting: int | None = None) -> None:
        """Show these jobs; `running` and `waiting` count them all (`FactorySnapshot.jobs_running`, `queue_length`)."""
        if jobs != self.jobs or (running, waiting) != self.counts:
            self.jobs, self.counts = jobs, (running, waiting)
            summary = jobs_summary(jobs, running, waiting)
            self.border_title = Content(f"jobs: {summary}" if summary else "jobs")
            self.refresh()

    def render(self) -> RenderableType:
        """Running first, as many as fit; the last line says how many more run or wait."""
        return JobsRenderable(self.jobs, max(1, self.size.height), *self.counts)
