"""The header's three lines: node states, GPUs and power against the budget, and the grid (price, cost, queue).

Each line is one `Text` that crops at the right edge, most important facts first, so it still reads at 80 columns.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.view import FactorySummary


def separator() -> tuple[str, str]:
    """` │ ` between the header's fields, in the palette's style now (NO_COLOR may be set after import)."""
    return " │ ", tone("secondary")


#: Older data than this shows its age instead of its time.
STALE_AFTER_S = 5.0


def budget_gauge(used_kw: float, budget_kw: float, width: int = 10) -> Text:
    """`[██████░░░░]`, coloured by how close the factory is to its facility budget."""
    fraction = used_kw / budget_kw if budget_kw else 0.0
    filled = min(width, round(fraction * width))
    style = tone("ok" if fraction < 0.8 else "warn" if fraction < 0.95 else "alarm")
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), tone("idle")))


class FactorySummaryRenderable:
    """Draw a `FactorySummary` (None while the first snapshot is on its way)."""

    def __init__(self, summary: FactorySummary | None, factory: str = "", now: float | None = None) -> None:
        self.summary = summary
        self.factory = factory
        self.now = now

    def nodes_line(self) -> Text:
        """Name, node count, then the problems (down, degraded, unhealthy), then up, connecting and drained.

        Zero counts of problems are left out (and so is a zero connecting or drained), so at 80 columns the line
        never crops a problem away; `N up` is always there.
        """
        s = self.summary
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(s.factory if s else self.factory, style="bold")
        if s is None:
            line.append("  connecting to the nodes…", style="italic")
            return line
        line.append(f" · {s.nodes} node{'' if s.nodes == 1 else 's'}")
        problems = [
            (f"{s.down} down", tone("alarm"), s.down),
            (f"{s.degraded} degraded", tone("warn"), s.degraded),
            (f"{s.unhealthy} unhealthy", tone("alarm"), s.unhealthy),
        ]
        rest = [
            (f"{s.up} up", tone("ok"), 1),
            (f"{s.connecting} connecting", "italic", s.connecting),
            (f"{s.drained} drained", tone("warn"), s.drained),
        ]
        for group in (problems, rest):
            shown = [(words, style) for words, style, count in group if count]
            if not shown:
                continue
            line.append(*separator())
            line.append_text(Text(" · ").join(Text(words, style=style) for words, style in shown))
        return line

    def _data_age(self) -> float | None:
        """Seconds since the newest sample when that is `STALE_AFTER_S` or more (judged against `now`), else None."""
        s = self.summary
        if s is None or s.last_sample is None or self.now is None:
            return None
        age = self.now - s.last_sample
        return age if age >= STALE_AFTER_S else None

    def _staleness(self) -> tuple[str, bool] | None:
        """What leads the power line when the data is old: (words, whether they say its age), or None.

        A late controller (`FactorySummary.late_controller`: it holds the store's lock but stores nothing) is named,
        with its data's age however young: `controller pid 4242 late: data 3 s old`; else `data N s old` once the
        newest sample is `STALE_AFTER_S` old.
        """
        s = self.summary
        late = s.late_controller if s is not None else None
        if late is not None:
            who = f"controller pid {late.pid}" if late.pid else "controller"
            if late.stored_at is None:
                return f"{who} late: nothing stored yet", False
            if self.now is not None:
                return f"{who} late: data {max(0.0, self.now - late.stored_at):.0f} s old", True
            return f"{who} late", False
        age = self._data_age()
        return None if age is None else (f"data {age:.0f} s old", True)

    def power_line(self) -> Text:
        """GPUs busy, power now against the facility budget, time of the newest sample.

        Stale data leads the line (`data N s old`, and the late controller's pid) so that the warning survives a
        narrow terminal.
        """
        s = self.summary
        line = Text(no_wrap=True, overflow="ellipsis")
        if s is None:
            return line
        stale = self._staleness()
        if stale is not None:
            line.append(stale[0], style=tone("stale"))
            line.append(*separator())
        line.append(f"GPUs {s.gpus_busy}/{s.gpus_total} busy")
        line.append(*separator())
        line.append("power ")
        line.append(fmt.kilowatts(s.power_kw), style="bold")
        if s.budget_kw is not None:
            line.append(f" of {fmt.kilowatts(s.budget_kw, 0)} budget")
            if s.power_kw is not None:
                line.append(" ")
                line.append_text(budget_gauge(s.power_kw, s.budget_kw))
                line.append(f" {s.power_kw / s.budget_kw:.0%}")
        else:
            line.append(" (no budget set)", style=tone("secondary"))
        if stale is None or not stale[1]:
            line.append(*separator())
            line.append(fmt.clock(s.last_sample))
        return line

    def grid_line(self) -> Text:
        """Energy per hour, caps, grid price with its trend, cost per hour, queue (`n/a` until their sources exist)."""
        s = self.summary
        line = Text(no_wrap=True, overflow="ellipsis")
        if s is None:
            return line
        line.append("energy ")
        if s.energy_per_hour_kwh is None:  # no power reported yet: never a made-up 0.0
            line.append("n/a", style=tone("idle"))
        else:
            line.append(f"{s.energy_per_hour_kwh:.1f} kWh/h")
        line.append(*separator())
        line.append(f"caps {fmt.kilowatts(s.power_limit_kw)}")
        line.append(*separator())
        line.append("price ")
        if s.price is None:
            line.append("n/a (error)" if s.price_error else "n/a", style=tone("secondary"))
        else:
            arrow = "" if s.price.trend is None else " ↑" if s.price.trend > 0 else " ↓" if s.price.trend < 0 else " →"
            currency = f" {s.price.currency}" if s.price.currency else ""
            line.append(f"{s.price.price_per_mwh:.2f}{currency}/MWh{arrow}", style="bold")
        line.append(*separator())
        line.append("cost ")
        if s.cost_per_hour is None:
            line.append("n/a", style=tone("secondary"))
        else:
            line.append(f"{s.cost_per_hour:.2f}/h")
        line.append(*separator())
        line.append("queue ")
        line.append("n/a" if s.queue_length is None else str(s.queue_length), style="" if s.queue_length else "dim")
        return line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Three cropped lines."""
        yield self.nodes_line()
        yield self.power_line()
        yield self.grid_line()
