"""The header's three lines: node states, GPUs and power against the budget, and the grid (price, cost, queue).

Each line is a row of facts, most important first, so it still reads at 80 columns. On a narrower terminal a line
gives up whole facts (or their longer forms), never a value cut in the middle (`16:50:…`): the power line first
drops its gauge, then the clock, then the GPUs busy, the others their last facts, and a line that left something out ends in `…`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.node_rows import state_style
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.view import FactorySummary


def separator() -> tuple[str, str]:
    """` │ ` between the header's fields, in the palette's style now (NO_COLOR may be set after import)."""
    return " │ ", tone("secondary")


#: Older data than this shows its age instead of its time.
STALE_AFTER_S = 5.0


@dataclass(frozen=True)
class Fact:
    """One fact of a header line in the forms it may take, longest first; a last form None means it may go.

    Of the facts that can still shrink, the one of the highest `rank` gives way first (the rightmost of equals).
    """

    forms: tuple[Text | None, ...]
    rank: int = 0


def fit_facts(facts: list[Fact], width: int | None) -> Text:
    """The facts joined by ` │ `, each in the longest form that lets the line fit `width` cells (None: no limit).

    A line that left a fact out ends in ` …`; one that still does not fit with every fact at its shortest is cropped.
    """
    chosen = [0] * len(facts)
    while True:
        shown = [fact.forms[form] for fact, form in zip(facts, chosen, strict=True)]
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, text in enumerate(t for t in shown if t is not None):
            if index:
                line.append(*separator())
            line.append_text(text)
        if None in shown:
            line.append(" …", style=tone("secondary"))
        shrinkable = [i for i, fact in enumerate(facts) if chosen[i] < len(fact.forms) - 1]
        if width is None or line.cell_len <= width or not shrinkable:
            return line
        chosen[max(shrinkable, key=lambda i: (facts[i].rank, i))] += 1


def optional(text: Text, rank: int) -> Fact:
    """A fact that is left out whole when the line has no room for it."""
    return Fact((text, None), rank)


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

    def nodes_line(self, width: int | None = None) -> Text:
        """Name, node count, then the problems (down, degraded, unhealthy), then up, stale, connecting and drained.

        Zero counts of problems are left out (and so is a zero stale, connecting or drained), so at 80 columns the line
        never crops a problem away; `N up` is always there while the line has room (`width` cells) for it.
        """
        s = self.summary
        title = Text.assemble((s.factory if s else self.factory, "bold"))  # the name bold, not what follows it
        if s is None:
            return fit_facts([Fact((title.append("  connecting to the nodes…", style="italic"),))], width)
        title.append(f" · {s.nodes} node{'' if s.nodes == 1 else 's'}")
        problems = [
            (f"{s.down} down", tone("alarm"), s.down),
            (f"{s.degraded} degraded", tone("warn"), s.degraded),
            (f"{s.unhealthy} unhealthy", tone("alarm"), s.unhealthy),
        ]
        rest = [
            (f"{s.up} up", tone("ok"), 1),
            (f"{s.stale} stale", state_style("stale"), s.stale),
            (f"{s.connecting} connecting", "italic", s.connecting),
            (f"{s.drained} drained", tone("warn"), s.drained),
        ]
        facts = [Fact((title,))]
        for group, rank in ((problems, 0), (rest, 1)):
            shown = [Text(words, style=style) for words, style, count in group if count]
            if not shown:
                continue
            if rank:  # the rest gives up its counts from the last, then goes
                facts.append(Fact((*(Text(" · ").join(shown[:n]) for n in range(len(shown), 0, -1)), None), rank))
            else:
                facts.append(Fact((Text(" · ").join(shown),)))
        return fit_facts(facts, width)

    def _data_age(self) -> float | None:
        """Seconds since the newest sample when that is `STALE_AFTER_S` or more (judged against `now`), else None."""
        s = self.summary
        if s is None or s.last_sample is None or self.now is None:
            return None
        age = self.now - s.last_sample
        return age if age >= STALE_AFTER_S else None

    def _staleness(self) -> tuple[str, bool] | None:
        """What leads the power line when the data is old: (words, whether they say its age), or None.

        factoryctl's files changed under the dashboard (`FactorySummary.code_changed`) is said first, and to restart
        it. A late controller (`FactorySummary.late_controller`: it holds the store's lock but stores nothing) is
        named, with its data's age however young: `controller pid 4242 late: data 3 s old`; else `data N s old` once
        the newest sample is `STALE_AFTER_S` old.
        """
        s = self.summary
        if s is not None and s.code_changed is not None:  # every row is `stale` then: say why, and what to do
            return s.code_changed, False
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

    def power_line(self, width: int | None = None) -> Text:
        """GPUs busy, power now against the facility budget, time of the newest sample.

        Stale data leads the line (`data N s old`, and the late controller's pid) so that the warning survives a
        narrow terminal. Short of room (`width` cells), the power reads `34.0/40 kW (85%)`, then the clock goes, then
        the GPUs busy.
        """
        s = self.summary
        if s is None:
            return Text(no_wrap=True, overflow="ellipsis")
        stale = self._staleness()
        facts = [Fact((Text(stale[0], style=tone("stale")),))] if stale is not None else []
        facts.append(optional(Text(f"GPUs {s.gpus_busy}/{s.gpus_total} busy"), rank=1))
        facts.append(Fact(self._power_forms(), rank=3))
        if stale is None or not stale[1]:
            facts.append(optional(Text(fmt.clock(s.last_sample)), rank=2))
        return fit_facts(facts, width)

    def _power_forms(self) -> tuple[Text, ...]:
        """`power 34.0 kW of 40 kW budget ████████░░ 85%`, then the short form `power 34.0/40 kW (85%)`."""
        s = self.summary
        assert s is not None
        power = Text.assemble("power ", (fmt.kilowatts(s.power_kw), "bold"))
        if s.budget_kw is None:
            return Text.assemble(power, (" (no budget set)", tone("secondary"))), power
        full = Text.assemble(power, f" of {fmt.kilowatts(s.budget_kw, 0)} budget")
        if s.power_kw is None:
            return (full,)
        share = f"{s.power_kw / s.budget_kw:.0%}"
        full.append_text(Text.assemble(" ", budget_gauge(s.power_kw, s.budget_kw), f" {share}"))
        short = Text.assemble("power ", (f"{s.power_kw:.1f}", "bold"), f"/{fmt.kilowatts(s.budget_kw, 0)} ({share})")
        return full, short

    def grid_line(self, width: int | None = None) -> Text:
        """Energy per hour, caps, grid price with its trend, cost per hour, queue (`n/a` until their sources exist).

        Short of room (`width` cells), the queue goes first, then the cost, the price and the caps.
        """
        s = self.summary
        if s is None:
            return Text(no_wrap=True, overflow="ellipsis")
        energy = Text("energy ")
        if s.energy_per_hour_kwh is None:  # no power reported yet: never a made-up 0.0
            energy.append("n/a", style=tone("idle"))
        else:
            energy.append(f"{s.energy_per_hour_kwh:.1f} kWh/h")
        price = Text("price ")
        if s.price is None:
            price.append("n/a (error)" if s.price_error else "n/a", style=tone("secondary"))
        else:
            arrow = "" if s.price.trend is None else " ↑" if s.price.trend > 0 else " ↓" if s.price.trend < 0 else " →"
            currency = f" {s.price.currency}" if s.price.currency else ""
            price.append(f"{s.price.price_per_mwh:.2f}{currency}/MWh{arrow}", style="bold")
        cost = Text("cost ")
        if s.cost_per_hour is None:
            cost.append("n/a", style=tone("secondary"))
        else:
            cost.append(f"{s.cost_per_hour:.2f}/h")
        queue = Text("queue ")
        queue.append(
            "n/a" if s.queue_length is None else str(s.queue_length), style="" if s.queue_length else tone("secondary")
        )
        caps = Text(f"caps {fmt.kilowatts(s.power_limit_kw)}")
        facts = [Fact((energy,)), *(optional(fact, rank) for rank, fact in enumerate((caps, price, cost, queue), 1))]
        return fit_facts(facts, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Three lines, each fitted to the width there is."""
        width = options.max_width
        yield self.nodes_line(width)
        yield self.power_line(width)
        yield self.grid_line(width)
