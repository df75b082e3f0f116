"""The jobs and events panels give way to the node table: `e` never squeezes the table's rows out of view.

A black-box review found: at 60x20 `e` left the node table with no rows and no column header; at 80x24 it left 4
rows (the panels took 9 lines whatever the table kept); and `e` pressed twice at 160x50 (hide, show) kept the panels
on after the terminal shrank to 80x24 (3 rows there instead of 12), as the operator's choice overrode the fold at
every size.
"""

from __future__ import annotations

import re

from factory_data import T0, FrozenServices
from pilot_helpers import RecordingApp, first_snapshot, last_notice, screen_text
from test_layout_room import factory

from factoryctl.tui.screens.main import PANELS_SQUEEZED_LINES, TABLE_MIN_ROWS, panels_lines


def node_rows(app: RecordingApp) -> int:
    """How many node rows the screen shows."""
    return len(re.findall(r"^ n\d\d ", screen_text(app), re.M))


def column_header_shown(app: RecordingApp) -> bool:
    return re.search(r"^ Node\b.* State .* Flags", screen_text(app), re.M) is not None


def app_on(nodes: int) -> RecordingApp:
    return RecordingApp(FrozenServices(factory(nodes)), clock=lambda: T0 + 1)


async def settle(pilot) -> None:
    """Let a key or a resize lay the screen out (the panels are sized once the others are)."""
    for _ in range(3):
        await pilot.pause()


def test_the_panels_never_take_the_tables_least() -> None:
    assert panels_lines(room=16, table_needs=68, table_least=9) == 7  # `e` at 80x24: 5 rows stay, 5 lines of events
    assert panels_lines(room=12, table_needs=68, table_least=9) == 0  # `e` at 60x20: no room, the table keeps it
    assert panels_lines(room=13, table_needs=6, table_least=6) == 7  # 2 nodes: every row, the rest to the panels
    assert panels_lines(room=9 + PANELS_SQUEEZED_LINES, table_needs=68, table_least=9) == PANELS_SQUEEZED_LINES


async def test_e_at_60x20_keeps_the_node_table_and_says_why() -> None:
    app = app_on(64)
    async with app.run_test(size=(60, 20)) as pilot:
        await first_snapshot(pilot)
        await settle(pilot)
        before = node_rows(app)
        await pilot.press("e")
        await settle(pilot)
        assert node_rows(app) == before >= TABLE_MIN_ROWS, screen_text(app)
        assert column_header_shown(app), screen_text(app)
        assert not app.screen.query_one("#panels").display
        assert "no room for the jobs and events panels at 60x20" in last_notice(app), app.notified
        assert "lines tall" in last_notice(app)


async def test_e_at_80x24_shows_the_panels_under_the_tables_least() -> None:
    app = app_on(64)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        text = screen_text(app)
        assert app.screen.query_one("#panels").display, text
        assert "events" in text, text
        assert node_rows(app) >= TABLE_MIN_ROWS, text
        assert column_header_shown(app), text
        assert not app.notified


async def test_panels_shown_again_on_a_tall_terminal_fold_away_when_it_shrinks() -> None:
    app = app_on(64)
    async with app.run_test(size=(160, 50)) as pilot:
        await first_snapshot(pilot)
        await settle(pilot)
        await pilot.press("e", "e")  # hide, show: the terminal's own choice again
        await settle(pilot)
        assert app.screen.query_one("#panels").display
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert not app.screen.query_one("#panels").display, screen_text(app)
        assert node_rows(app) >= 12, screen_text(app)


async def test_panels_asked_for_give_way_to_a_terminal_too_short_for_them() -> None:
    app = app_on(64)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.resize_terminal(60, 20)
        await settle(pilot)
        assert not app.screen.query_one("#panels").display, screen_text(app)
        assert node_rows(app) >= TABLE_MIN_ROWS, screen_text(app)
        assert column_header_shown(app), screen_text(app)
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert app.screen.query_one("#panels").display, screen_text(app)  # still asked for: back with the room
