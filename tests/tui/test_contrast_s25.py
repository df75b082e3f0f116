"""Every built-in Textual theme a user can pick (`TEXTUAL_THEME`) keeps the dashboard's words at 4.5:1, and a GPU's
mini-bar in its warning band or at its limit has a shape of its own, not only a colour.

Session 24 measured two themes, and through `TEXTUAL_THEME` set after Textual read it (at import): every run drew
`textual-dark`. Here the theme is set on the app itself, as `TEXTUAL_THEME` sets it at start.
"""

from __future__ import annotations

import re

import pytest
from factory_data import FrozenServices
from pilot_helpers import first_snapshot
from rich.color import Color as RichColor
from test_contrast_s24 import OVER_BUDGET, colours, contrast, frame, graphs_read_at_3_to_1, open_node_screen
from textual.color import Color
from textual.theme import BUILTIN_THEMES

from factoryctl.model.sparkline import BLOCKS
from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.renderables import palette
from factoryctl.tui.renderables.gpu_bars import HOT_BAR, LOST, MISSING, WARN_BAR, bar_glyph

#: Every theme but the two ANSI ones, which draw the terminal's own 16 colours (test_contrast_s24's 16-colour test).
THEMES = sorted(name for name in BUILTIN_THEMES if not name.startswith("ansi-"))


def theme_app(theme: str, monkeypatch: pytest.MonkeyPatch) -> DashboardApp:
    """The over-budget factory's dashboard on a truecolor terminal, in `theme`."""
    monkeypatch.setenv("COLORTERM", "truecolor")
    app = make_app(FrozenServices(OVER_BUDGET))
    app.theme = theme
    return app


def palette_colours(theme: str) -> set[tuple[int, int, int]]:
    """The colours the palette can give words on `theme`: its dark or light set, before and after `readable`."""
    styles = palette.DARK_STYLES if BUILTIN_THEMES[theme].dark else palette.LIGHT_STYLES
    chosen = palette.theme_styles(BUILTIN_THEMES[theme])
    names = [s.split()[-1] for s in (*styles.values(), *chosen.values()) if s.split() and s.split()[-1][0] == "#"]
    return {RichColor.parse(name).get_truecolor() for name in names}  # type: ignore[misc]


def hexcode(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def dim_palette_words(app: DashboardApp, theme: str) -> list[tuple[str, str, str, float]]:
    """Runs of text in a palette colour under 4.5:1: (text, colour, background, ratio)."""
    ours = palette_colours(theme)
    found = []
    for line in frame(app):
        for segment in line:
            if segment.style is None or not re.search(r"\w", segment.text):
                continue
            fg, bg = colours(segment.style)
            if fg in ours and contrast(fg, bg) < 4.5:
                found.append((segment.text.strip(), hexcode(fg), hexcode(bg), contrast(fg, bg)))
    return found


@pytest.mark.parametrize("theme", THEMES)
async def test_every_palette_word_reads_at_4_5_to_1_on_every_builtin_theme(
    theme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nord's panels (#3b4252) took a down node's red to 3.6:1 and its reason's grey to 4.2:1; catppuccin-frappe 3.4:1.

    Words in the theme's own colours (its footer's keys, its foreground on its panel: the table headers) are the
    theme's choice, not measured here (docs/dashboard.md names the themes where they fall short)."""
    app = theme_app(theme, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        assert app.current_theme.name == theme
        drawn = {hexcode(colours(s.style)[1]) for line in frame(app) for s in line if s.style}
        assert BUILTIN_THEMES[theme].to_color_system().generate()["background"].lower() in drawn  # the theme drawn
        assert [s for line in frame(app) for s in line if s.text.strip() == "timeout"], "no down node on the screen"
        assert dim_palette_words(app, theme) == []
        await open_node_screen(pilot)
        assert dim_palette_words(app, theme) == []


@pytest.mark.parametrize("theme", THEMES)
async def test_the_power_graph_reads_at_3_to_1_on_every_builtin_theme(
    theme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph columns are graphics (WCAG's 3:1), above and below the budget, and on the node screen's histories."""
    app = theme_app(theme, monkeypatch)
    async with app.run_test(size=(120, 40)) as pilot:
        await graphs_read_at_3_to_1(app, pilot, "▁▂▃▄▅▆▇█▓")


def test_a_colour_already_readable_is_kept_and_one_too_dim_is_blended_only_as_far_as_it_needs() -> None:
    """The default themes keep their measured sets; nord's red moves toward white just past 4.5:1."""
    panel, red = Color.parse("#3b4252"), Color.parse("#ff6b6b")
    assert palette.contrast(red, panel) < 4.5
    lifted = palette.readable(red, [panel], dark=True)
    assert palette.contrast(lifted, panel) >= 4.5
    assert palette.contrast(red.blend(Color(255, 255, 255), 0.05), panel) < 4.5 <= palette.contrast(lifted, panel)
    for theme, styles in (("textual-dark", palette.DARK_STYLES), ("textual-light", palette.LIGHT_STYLES)):
        assert palette.theme_styles(BUILTIN_THEMES[theme]) == styles, theme


def test_a_warned_or_hot_bar_has_a_shape_of_its_own() -> None:
    """Bold does nothing to a block: a warned bar was the ok bar's `▆` in another colour (one colour to a red-green
    colour-blind reader, none under NO_COLOR). Now it is a shade no ok bar uses, and a hot one a darker shade."""
    fractions = [i / 40 for i in range(41)]
    ok = {bar_glyph(f, level) for f in fractions for level in ("ok", "idle")}
    assert ok <= set(BLOCKS[1:])
    assert {bar_glyph(f, "warn") for f in fractions} == {WARN_BAR}
    assert {bar_glyph(f, "hot") for f in fractions} == {HOT_BAR}
    assert len({WARN_BAR, HOT_BAR, LOST, MISSING, *BLOCKS}) == len(BLOCKS) + 4


def test_the_node_table_draws_a_warned_bar_in_its_shape_without_colour() -> None:
    """Two GPUs at 79% and 81% of their cap were both `▆`, told apart by colour alone (bold does nothing to a block)."""
    from factory_data import gpu

    from factoryctl.model.telemetry import NodeSample
    from factoryctl.tui.renderables.node_rows import cell_pieces
    from factoryctl.tui.view import NodeRow

    gpus = (
        gpu(1, 0, temperature_c=40.0, temperature_slowdown_c=87.0, power_w=553.0, power_limit_w=700.0),  # ok: 79%
        gpu(1, 1, temperature_c=76.0, temperature_slowdown_c=87.0, power_w=567.0, power_limit_w=700.0),  # warn: 81%
        gpu(1, 2, temperature_c=85.0, temperature_slowdown_c=87.0, power_w=690.0, power_limit_w=700.0),  # hot
    )
    row = NodeRow(NodeSample(node="demo01", time=0.0, gpus=gpus), "a", drained=False)
    for plain in (True, False):
        cells = cell_pieces(row, plain)
        assert [text for text, _ in cells["power"][:3]] == ["▆", WARN_BAR, HOT_BAR], plain
        assert [text for text, _ in cells["temp"][:3]][1:] == [WARN_BAR, HOT_BAR], plain
