"""The factory screen uses the room a terminal has, and gives it up in order on a small one.

A black-box review found: at 200x60 the events panel stayed 7 lines high under ~24 empty lines below a 16-row
table; in the 40-column events panel (80 columns, jobs beside it) every event was cut (`n05 is degraded: the
agen…`); at 60x20 the Flags column scrolled off (a node's `unhealthy` out of view) and the header's clock was cut
mid-value (`16:50:…`); and the key list said `q` quits where, in the list itself, it closes the list.
"""

from __future__ import annotations

import dataclasses
import re

from factory_data import T0, FrozenServices, fixed_nodes, fixed_snapshot
from pilot_helpers import first_snapshot, plain, screen_text
from textual.widgets import Static

from factoryctl.live.services import DashboardEvent, FactorySnapshot
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.renderables.feed_lists import EventsRenderable
from factoryctl.tui.screens.help import HelpScreen
from factoryctl.tui.screens.main import PANELS_MIN_LINES, panels_lines
from factoryctl.tui.view import summarize
from factoryctl.tui.widgets.events_panel import EventsPanel

LONG = "the agent exited with status 1 after it lost its driver"


def factory(count: int, events: int = 30) -> FactorySnapshot:
    """`count` nodes `n01`… (every 8th down, degraded, unhealthy as in the fixed factory) and `events` long events."""
    nodes = [dataclasses.replace(n, node=f"n{i + 1:02d}") for i, n in enumerate(fixed_nodes(8) * (count // 8))]
    news = tuple(
        DashboardEvent(T0 - 100 + i, f"n{i % count + 1:02d}", "node_degraded", f"is degraded: {LONG} #{i}", "warning")
        for i in range(events)
    )
    return fixed_snapshot(
        nodes=tuple(nodes), racks={n.node: "rack-a" for n in nodes}, drained=frozenset(), events=news, groups={}
    )


def app_on(snapshot: FactorySnapshot):
    return make_app(FrozenServices(snapshot), clock=lambda: T0 + 1)


def test_the_panels_take_the_room_the_table_does_not_need() -> None:
    assert panels_lines(room=52, table_needs=19, table_least=9) == 33  # 16 nodes at 200x60: the rest to the events
    assert panels_lines(room=52, table_needs=67, table_least=9) == 17  # 64 nodes: the panels keep a third
    assert panels_lines(room=26, table_needs=19, table_least=9) == PANELS_MIN_LINES  # 34 lines: 7 lines of events
    assert panels_lines(room=26, table_needs=67, table_least=9) == PANELS_MIN_LINES  # 64 nodes at 80x34


async def test_a_tall_terminal_shows_every_node_and_more_events() -> None:
    app = app_on(factory(16))
    async with app.run_test(size=(200, 60)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert all(re.search(rf"^ n{i:02d} ", text, re.M) for i in range(1, 17)), text
        events = app.screen.query_one(EventsPanel)
        assert events.size.height >= 30, text
        assert text.count(" is degraded: ") >= 30, text  # every event, none left out for want of room
        lines = text.splitlines()
        last_row = max(i for i, line in enumerate(lines) if line.startswith(" n16 "))
        assert "events" in lines[last_row + 2], lines[last_row : last_row + 3]  # no empty lines in between


async def test_many_nodes_on_a_tall_terminal_leave_the_events_a_third() -> None:
    app = app_on(factory(64))
    async with app.run_test(size=(200, 60)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        assert app.screen.query_one("#panels").outer_size.height == 17  # a third of the 52 lines under the graph
        assert re.search(r"^ n30 ", screen_text(app), re.M)


async def test_a_narrow_events_panel_wraps_the_newest_events_whole() -> None:
    app = app_on(factory(16))
    async with app.run_test(size=(80, 34)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        panel = app.screen.query_one(EventsPanel)
        text = plain(panel.render(), width=panel.size.width)
        words = " ".join(text.split())
        assert f"n14 is degraded: {LONG} #29" in words, text  # the newest, every word
        assert f"n13 is degraded: {LONG} #28" in words, text
        assert "…" not in text, text


def test_events_that_do_not_fit_whole_are_left_out() -> None:
    events = factory(16).events
    lines = plain(EventsRenderable(events, limit=5), width=40).splitlines()
    assert len([line for line in lines if line.strip()]) <= 5
    words = " ".join(" ".join(lines).split())
    assert words.endswith(f"{LONG} #29"), lines  # the newest whole (3 lines at 40 columns)
    assert "#28" not in words, lines  # the next would need 6 lines: left out, not cut


async def test_below_80x24_every_node_keeps_its_state_and_flags_in_view() -> None:
    app = app_on(factory(16))
    async with app.run_test(size=(60, 20)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert "Flags" in text, text
        for row in (line for line in text.splitlines() if re.match(r" n\d\d ", line)):
            name, state = row.split()[:2]
            unhealthy = state != "up" or name in ("n07", "n15")  # down, degraded, ECC errors
            assert row.rstrip().endswith("unhealthy") == unhealthy, row


def test_the_header_never_cuts_a_value_in_the_middle() -> None:
    summary = summarize(factory(16))
    for width in range(30, 100):
        lines = plain(FactorySummaryRenderable(summary, now=T0 + 1), width=width).splitlines()
        clock = re.search(r"\d\d:[\d:]*Z?…?$", lines[1].rstrip())
        assert clock is None or clock.group() == "11:06:40Z", (width, lines[1])
        assert not re.search(r"\d…", "".join(lines[1:] if width < 56 else lines)), (width, lines)  # `12 …`, `16:…`


def test_at_60_columns_the_header_keeps_the_clock_and_says_what_it_left_out() -> None:
    lines = plain(FactorySummaryRenderable(summarize(factory(16)), now=T0 + 1), width=58).splitlines()
    assert lines[1].rstrip() == "GPUs 80/112 busy │ power 34.0/40 kW (85%) │ 11:06:40Z"
    assert lines[0].rstrip() == "demo · 16 nodes │ 2 down · 2 degraded · 6 unhealthy …"


async def test_the_key_list_says_q_closes_it() -> None:
    app = app_on(fixed_snapshot())
    async with app.run_test(size=(100, 50)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#keys", Static).content, width=160)
        quit_line = next(line for line in text.splitlines() if line.split()[:1] == ["q"] and "quit" in line)
        assert "in this list: close it" in quit_line, quit_line
