"""Every field of the highlighted GPU, the job holding it among them, with its recent history."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from factoryctl.live.services import GpuHistory, GpuJob
from factoryctl.model.telemetry import GpuSample
from factoryctl.tui.renderables.gpu_detail import GpuDetailRenderable
from factoryctl.tui.renderables.palette import tone


class GpuDetail(Widget):
    """Fields and sparklines of one GPU."""

    DEFAULT_CSS = """
    GpuDetail { height: auto; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gpu: GpuSample | None = None
        self.history: GpuHistory | None = None
        self.job: GpuJob | None = None

    def show(self, gpu: GpuSample | None, history: GpuHistory | None, job: GpuJob | None = None) -> None:
        """Show a GPU and the job holding it (None: nothing to detail; no `job`: no job line)."""
        self.gpu, self.history, self.job = gpu, history, job
        self.refresh(layout=True)
        # A second show() while the first's layout is pending does not count as a new layout in Textual 8.2.8, and
        # a layout run in between (event-loop timing: seen on Python 3.13) kept the first, shorter height cached: the
        # history charts were cut off until the next snapshot. Asked again once the screen has refreshed.
        self.call_after_refresh(self.refresh, layout=True)

    def render(self) -> RenderableType:
        """The detail renderable."""
        if self.gpu is None:
            return Text("no GPU reported", style=tone("secondary"))
        return GpuDetailRenderable(self.gpu, self.history, self.job)
