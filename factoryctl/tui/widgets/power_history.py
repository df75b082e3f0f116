"""Factory power over the last hour, two lines tall: the budget a dashed line, the columns above it red."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.content import Content
from textual.widget import Widget

from factoryctl.live.services import FactorySnapshot
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.renderables.sparkline import Sparkline


class PowerHistory(Widget):
    """Sparkline of the factory's GPU power; the border title gives the window and the peak."""

    DEFAULT_CSS = """
    PowerHistory {
        height: 4; border: round $primary-darken-1; padding: 0 1; border-title-color: $text; border-subtitle-color: $text;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: tuple[float, ...] = ()
        self.budget_w: float | None = None
        self.border_title = "factory power"

    def show(self, snapshot: FactorySnapshot) -> None:
        """Take the history out of a snapshot."""
        self.values = snapshot.power_history_w
        self.budget_w = snapshot.budget_kw * 1000 if snapshot.budget_kw else None
        minutes = len(self.values) * snapshot.interval_s / 60
        peak = max(self.values) / 1000 if self.values else None
        window = f"last {minutes:.0f} min" if minutes >= 1 else f"last {len(self.values) * snapshot.interval_s:.0f} s"
        self.border_title = Content(f"factory power, {window}, peak {fmt.kilowatts(peak)}")
        notes = []
        outlook = snapshot.price_outlook_per_mwh
        if len(outlook) > 1:
            known = [p for p in outlook if p is not None]
            line = "".join(char for char, _ in Sparkline(outlook).rows(len(outlook))[0])
            notes.append(f"price next {len(outlook)} h {line} {min(known):.0f}–{max(known):.0f}/MWh")
        if self.budget_w:
            notes.append(f"budget {fmt.kilowatts(snapshot.budget_kw, 0)}")
        self.border_subtitle = Content(" · ".join(notes))
        self.refresh()

    def render(self) -> RenderableType:
        """The graph, scaled from zero to the budget (or the peak)."""
        if not self.values:
            return Text("collecting…", style=tone("secondary"))
        top = max(max(self.values), self.budget_w or 0.0)
        return Sparkline(self.values, height=2, minimum=0.0, maximum=top, ceiling=self.budget_w)
