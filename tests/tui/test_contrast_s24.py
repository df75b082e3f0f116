"""Every word of the dashboard reads at 4.5:1 (WCAG AA) on its background, on dark, light and colourless screens,
and no meaning is left to a colour alone: a 16-colour terminal gets the ANSI colours that say warning and alarm,
a warning is bold as well as yellow (red-green colour blindness), a graph's budget is a line it breaks through.

Frames are the real app's, after Textual's own filters (NO_COLOR, ANSI to RGB), as the terminal receives them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import textual.constants
from factory_data import FrozenServices, fixed_snapshot, gpu
from pilot_helpers import first_snapshot, plain, wait_until
from rich.color import Color, ColorSystem
from rich.segment import Segment
from rich.style import Style
from textual.widgets import Static

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.renderables.node_rows import cell_pieces
from factoryctl.tui.renderables.sparkline import CEILING_MARK, OVER_FULL, Sparkline
from factoryctl.tui.screens.help import HelpScreen
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.view import NodeRow
from factoryctl.tui.widgets.gpu_table import gpu_cells

#: A snapshot whose power history goes above its budget (the fixed factory's peaks ~34 kW).
OVER_BUDGET = dataclasses.replace(fixed_snapshot(), budget_kw=30.0)


def luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def frame(app: DashboardApp) -> list[list[Segment]]:
    """The screen's lines as the terminal receives them: Textual's enabled filters applied."""
    lines = []
    for strip in app.screen._compositor.render_strips():
        line = list(strip)
        for line_filter in app._filters:
            if line_filter.enabled:
                line = line_filter.apply(line, app.styles.background)
        lines.append(line)
    return lines


def colours(style: Style) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    def rgb(color: Color | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
        return default if color is None else tuple(color.get_truecolor())  # type: ignore[return-value]

    fg, bg = rgb(style.color, (255, 255, 255)), rgb(style.bgcolor, (0, 0, 0))
    return (bg, fg) if style.reverse else (fg, bg)


def on(style: Style) -> tuple[int, int, int]:
    """The background a segment is drawn on."""
    return colours(style)[1]


def on_cursor(app: DashboardApp, cursor: Color) -> list[str]:
    """The runs of text drawn on the cursor's background."""
    triplet = cursor.get_truecolor()
    return [s.text for line in frame(app) for s in line if s.style and s.text.strip() and on(s.style) == triplet]


def low_contrast_words(
    app: DashboardApp, limit: float = 4.5, background: Color | None = None
) -> list[tuple[str, float]]:
    """Runs of text (a letter or digit in them) under `limit`; only those on `background` when given."""
    found = []
    for line in frame(app):
        for segment in line:
            style = segment.style
            if style is None or not re.search(r"\w", segment.text):
                continue
            if background is not None and (style.bgcolor is None or on(style) != background.get_truecolor()):
                continue
            ratio = contrast(*colours(style))
            if ratio < limit:
                found.append((segment.text.strip(), round(ratio, 2)))
    return found


def styles_of(app: DashboardApp, text: str) -> list[Style]:
    return [s.style for line in frame(app) for s in line if s.style is not None and s.text.strip() == text]


async def open_node_screen(pilot) -> None:
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, NodeScreen), what="the node screen")
    await wait_until(pilot, lambda: pilot.app.screen.history is not None, what="the node's history")
    await pilot.pause()


def themed_app(theme: str, monkeypatch: pytest.MonkeyPatch) -> DashboardApp:
    """The over-budget factory's dashboard on a truecolor terminal, in `theme` (or `no-color`: NO_COLOR set)."""
    monkeypatch.setenv("COLORTERM", "truecolor")
    if theme == "no-color":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.setenv("TEXTUAL_THEME", theme)
    app = make_app(FrozenServices(OVER_BUDGET))
    if theme != "no-color":
        app.theme = theme  # what TEXTUAL_THEME selects at start: Textual read the variable once, at import
    return app


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "no-color"])
async def test_every_word_reads_at_4_5_to_1(theme: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings, `data N s old`, grey secondary text, footer keys, a down node's reason, the node screen."""
    app = themed_app(theme, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        assert styles_of(app, "timeout"), "the down node's reason is not on the screen"
        assert low_contrast_words(app) == []
        await open_node_screen(pilot)
        assert low_contrast_words(app) == []


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_the_cursor_rows_keep_every_value_readable(theme: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor's blue (#0178d4) under the row's green, yellow and grey values: 1.9:1 to 3.8:1.

    The node table's cursor row is drawn without colour (NO_COLOR's attributes), the GPU table's on a dark blue
    every value colour reads on."""
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("TEXTUAL_THEME", theme)
    app = make_app(FrozenServices(OVER_BUDGET))
    app.theme = theme  # what TEXTUAL_THEME selects at start: Textual read the variable once, at import
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("down", "down", "down", "down")  # demo05, down: its reason on the cursor
        table = app.screen.query_one("#nodes")
        cursor = table.get_component_rich_style("node-table--cursor").bgcolor
        assert cursor is not None
        assert "timeout" in [text.strip() for text in on_cursor(app, cursor)]
        assert low_contrast_words(app, background=cursor) == []
        # the cursor still stands out from the table (3:1, a UI state), its alarms in reverse video as without colour
        assert contrast(cursor.get_truecolor(), table.styles.background.rgb) >= 3.0  # type: ignore[arg-type]
        assert [bool(s.style.reverse) for line in frame(app) for s in line if s.text == "down" and s.style] == [True]
        await pilot.press("up", "up", "up", "up")  # demo01: a GPU in the warning band
        assert low_contrast_words(app, background=cursor) == []
        await open_node_screen(pilot)
        gpus = app.screen.query_one("#gpus")
        cursor = gpus.get_component_rich_style("datatable--cursor").bgcolor
        assert cursor is not None
        assert len(on_cursor(app, cursor)) > 5
        assert low_contrast_words(app, background=cursor) == []


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "no-color"])
async def test_the_power_graph_reads_at_3_to_1_above_and_below_the_budget(
    theme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph columns are graphics (3:1); NO_COLOR made the over-budget ones #3b3b3b on #121212 (1.67:1)."""
    app = themed_app(theme, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await graphs_read_at_3_to_1(app, pilot, "▁▂▃▄▅▆▇█")


async def graphs_read_at_3_to_1(app: DashboardApp, pilot: Any, history_glyphs: str) -> None:
    """Assert the power graph's columns, then the node screen's history columns (`history_glyphs`), read at 3:1."""
    await first_snapshot(pilot)
    region = app.screen.query_one("#power").content_region
    lines = frame(app)[region.y : region.bottom]
    cells = [s for line in lines for s in line if s.style is not None and s.text.strip(" ") and s.text != "│"]
    assert cells
    assert min(contrast(*colours(s.style)) for s in cells) >= 3.0  # type: ignore[arg-type]
    await open_node_screen(pilot)  # the GPU's utilization, power and temperature history
    region = app.screen.query_one("#detail-scroll").content_region
    lines = frame(app)[region.y : region.bottom]
    graph = [s for line in lines for s in line if s.style is not None and set(s.text) & set(history_glyphs)]
    assert graph
    assert min(contrast(*colours(s.style)) for s in graph) >= 3.0  # type: ignore[arg-type]


def test_columns_above_the_budget_break_through_a_dashed_budget_line() -> None:
    """Above budget is a shape, not only a colour: a dashed budget line the columns below it stay under, and the
    columns above it shaded where full."""
    values = [10.0, 20.0, 45.0, 30.0, 50.0]
    graph = Sparkline(values, height=2, minimum=0.0, maximum=50.0, ceiling=40.0)
    rows = graph.rows(len(values))
    assert "".join(char for char, _ in rows[0]) == f"{CEILING_MARK}{CEILING_MARK}▆▂{OVER_FULL}"
    assert "".join(char for char, _ in rows[1]) == f"▃▆{OVER_FULL}█{OVER_FULL}"  # full cells above it: shaded
    assert [style for _, style in rows[0]][2::2] == [graph.ceiling_style] * 2  # the two above it
    below = Sparkline([10.0, 20.0], height=2, minimum=0.0, maximum=40.0, ceiling=40.0).rows(2)
    assert "".join(char for char, _ in below[0]) == CEILING_MARK * 2  # the budget is the top: a line along it


def test_a_warning_is_bold_as_well_as_yellow_and_fine_is_not() -> None:
    """Deuteranopia: the warning #fd971f and the fine #98e024 are one colour; bold tells them apart."""
    warm = gpu(1, 0, temperature_c=76.0, temperature_slowdown_c=87.0, power_w=600.0, power_limit_w=700.0)
    cool = gpu(1, 1, temperature_c=40.0, temperature_slowdown_c=87.0, power_w=100.0, power_limit_w=700.0)
    for sample, bold in ((warm, True), (cool, False)):
        cells = gpu_cells(sample)
        power = next(c for c in cells if "/" in c.plain and "W" in c.plain)
        temp = next(c for c in cells if c.plain.endswith("°C"))
        for cell in (power, temp):
            assert all(bool(Style.parse(str(span.style)).bold) == bold for span in cell.spans), (cell.plain, cell.spans)
        row = NodeRow(NodeSample(node="demo01", time=0.0, gpus=(sample,)), "a", drained=False)
        hottest_text, hottest_style = cell_pieces(row)["temp"][-1]
        assert bool(Style.parse(hottest_style).bold) == bold, hottest_text


def sgr(style: Style) -> set[str]:
    return set(style._make_ansi_codes(ColorSystem.STANDARD).split(";"))


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_a_16_colour_terminal_gets_the_ansi_colours_of_warning_alarm_and_fine(
    theme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TERM=xterm: warnings were bright red (91), alarms magenta (35), both yellow on the light theme.

    A headless app detects no terminal, so the colour system is named as `TEXTUAL_COLOR_SYSTEM=standard` does.
    """
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")
    monkeypatch.setenv("TEXTUAL_THEME", theme)
    app = make_app(FrozenServices(OVER_BUDGET))
    app.theme = theme  # what TEXTUAL_THEME selects at start: Textual read the variable once, at import
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        assert app.console.color_system == "standard"
        for word, colour in (("1 degraded", "33"), ("1 drained", "33"), ("1 down", "31"), ("6 up", "32")):
            assert [colour in sgr(style) for style in styles_of(app, word)] == [True], word
        assert {"1"} <= sgr(styles_of(app, "1 degraded")[0])  # bold: the second cue
        codes = [sgr(s.style) for line in frame(app) for s in line if s.style is not None and s.text.strip()]
        assert not [c for c in codes if "90" in c], "bright black: the background itself in some palettes"
        assert not [c for c in codes if "40" in c], "black painted beside the terminal's own background (49)"
        for key in ("q", "?", "d"):  # the footer's key letters were bright red on grey (~1:1)
            assert not [s for s in styles_of(app, key) if {"91", "100"} <= sgr(s)], key


async def test_the_key_list_names_tab_and_the_focused_detail_is_marked() -> None:
    """The node screen's detail pane was reachable only by a Tab no list named, and showed no focus."""
    app = make_app(FrozenServices())
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        await open_node_screen(pilot)
        detail = app.screen.query_one("#detail-scroll")
        before = detail.styles.border_left
        await pilot.press("tab")
        await wait_until(pilot, lambda: detail.has_focus, what="the detail to take the focus")
        assert detail.styles.border_left != before
        assert detail.styles.border_left[0] not in ("", "none", "hidden", "blank")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NodeScreen), what="the factory screen")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the key list")
        listed = plain(app.screen.query_one("#keys", Static).content, width=160)
        assert "Tab, Shift-Tab" in listed
        assert "GPU's detail" in listed


def test_no_style_is_bright_black_which_some_palettes_draw_as_the_background() -> None:
    """A 16-colour terminal's 90 (Solarized: the background itself) drew `connecting…` and every grey word."""
    from factoryctl.tui.renderables import palette
    from factoryctl.tui.renderables.node_rows import state_style

    assert "bright_black" not in state_style("connecting", plain=False)
    assert "bright_black" not in state_style("stale", plain=False)
    assert not [style for style in palette.COLOUR_STYLES.values() if "bright_black" in style]
    rows = Sparkline([1.0, None, 3.0], height=1).rows(3)
    assert not [style for _, style in rows[0] if "bright_black" in style]
