"""Under NO_COLOR the alarms stay the most visible thing on the screen: bold reverse video, never a dark grey.

Textual's NO_COLOR turns each colour into its grey of the same luminance; red's is #3a3a3a, which on the dark
background read at 1.5:1 while normal text reads at 15:1. The renderables are checked without an App, and the real
app's frame is checked after Textual's own NO_COLOR filter, as the terminal receives it.
"""

from __future__ import annotations

import dataclasses

import pytest
from factory_data import T0, FrozenServices, fixed_snapshot, gpu
from pilot_helpers import first_snapshot
from rich.style import Style

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.renderables.gpu_detail import detail_rows
from factoryctl.tui.renderables.node_rows import cell_pieces
from factoryctl.tui.view import NodeRow, summarize
from factoryctl.tui.widgets.gpu_table import gpu_cells


@pytest.fixture
def no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


def colourless_emphasis(style: str | Style) -> bool:
    """Bold reverse with no colour of its own: the text's own colour, swapped with its background."""
    parsed = Style.parse(style) if isinstance(style, str) else style
    return bool(parsed.bold and parsed.reverse) and parsed.color is None and parsed.bgcolor is None


def hot_node() -> NodeRow:
    hot = gpu(1, 0, temperature_c=95.0, power_w=700.0, ecc_uncorrected=1)
    return NodeRow(NodeSample(node="demo01", time=0.0, gpus=(hot,)), "a", drained=False)


@pytest.mark.usefixtures("no_color")
def test_the_header_alarms_are_bold_reverse_without_colour() -> None:
    line = FactorySummaryRenderable(summarize(fixed_snapshot())).nodes_line()
    styles = {line.plain[span.start : span.end]: span.style for span in line.spans}
    assert colourless_emphasis(styles["1 down"])
    assert colourless_emphasis(styles["3 unhealthy"])
    assert "red" not in str(styles["1 degraded"])
    assert "bold" in str(styles["1 degraded"])
    stale = FactorySummaryRenderable(summarize(fixed_snapshot()), now=T0 + 30).power_line()
    assert stale.plain.startswith("data 30 s old")
    assert colourless_emphasis(stale.spans[0].style)


@pytest.mark.usefixtures("no_color")
def test_the_table_flags_hottest_value_and_hot_bars_are_never_grey() -> None:
    cells = cell_pieces(hot_node())
    assert cells["flags"] == [("unhealthy", "bold reverse")]
    hottest_text, hottest_style = cells["temp"][-1]
    assert hottest_text.strip() == "95"
    assert colourless_emphasis(hottest_style)
    bar, bar_style = cells["temp"][0]
    assert bar == "▓"  # at its limit: a shade of its own (gpu_bars.HOT_BAR), bold doing nothing to a block
    assert bar_style == "bold"  # a reversed bar would read upside down: its height is its value
    assert cells["power"][0][1] == "bold"  # at the cap
    down = NodeRow(NodeSample(node="demo02", time=0.0, state="down", error="timeout"), "a", drained=False)
    assert colourless_emphasis(cell_pieces(down)["state"][0][1])
    assert cell_pieces(down)["util"] == [("timeout", "")]  # why it is down, in the text's own colour


@pytest.mark.usefixtures("no_color")
def test_what_is_said_beside_the_data_is_normal_text_not_dark_grey() -> None:
    """n/a, a down node's reason, event times: Textual would turn bright_black into #3a3a3a on black."""
    from factoryctl.tui.text import not_reported

    blank = dataclasses.replace(gpu(1, 0), null_reasons={"fan_pct": "not supported"})
    assert not_reported(blank, "fan_pct").style == ""
    assert Style.parse(str(not_reported(blank, "fan_pct").style)).color is None


@pytest.mark.usefixtures("no_color")
def test_the_node_screen_alarms_are_bold_reverse_without_colour() -> None:
    hot = gpu(1, 0, temperature_c=95.0, power_w=700.0, ecc_uncorrected=1)
    cells = gpu_cells(hot)
    for cell in (cells[2], cells[4], cells[7]):  # power at the cap, temperature, ECC
        assert all(colourless_emphasis(span.style) for span in cell.spans), cell.spans
    rows = dict(detail_rows(hot))
    assert all(colourless_emphasis(span.style) for span in rows["temperature"].spans[:1])
    assert colourless_emphasis(rows["ECC uncorr."].spans[0].style)


def test_with_colour_the_alarms_stay_red() -> None:
    cells = cell_pieces(hot_node())
    assert cells["flags"] == [("unhealthy", "bold red")]
    assert cells["temp"][0] == ("▓", "bold red")


async def test_the_frame_sent_to_the_terminal_shows_unhealthy_in_reverse_not_dark_grey(no_color: None) -> None:
    """The real app, after Textual's NO_COLOR filter: the alarm is reverse video in the normal text's colour."""
    snap = fixed_snapshot()
    app = make_app(FrozenServices(dataclasses.replace(snap)))
    async with app.run_test(size=(100, 24)) as pilot:
        await first_snapshot(pilot)
        assert app.no_color
        segments = []
        for strip in app.screen._compositor.render_strips():
            line = list(strip)
            for line_filter in app._filters:
                line = line_filter.apply(line, app.styles.background)
            segments.extend(line)
    alarm = next(s for s in segments if s.text.strip() == "3 unhealthy")
    normal = next(s for s in segments if "GPUs" in s.text)  # under NO_COLOR it shares a segment with " │ "
    assert alarm.style.reverse
    assert alarm.style.bold
    assert alarm.style.color == normal.style.color  # the text's own light grey, not red's dark one
