"""Keys that come in one burst act in the order they were pressed in every text input of the dashboard.

A terminal's driver reads `⌫⌫⌫n05` (tmux send-keys, a fast typist) in one go. Textual's `Input` typed the letters
at once but ran Backspace through the bindings after a round trip through the screen and the app, so the letters
overtook it: the filter `abc`, three Backspaces and `n05` read `abn`, a cap of `450`, three Backspaces and `300` read
`430`, and the clamp note spoke of another value than the one meant.
"""

from __future__ import annotations

import pytest
from factory_data import FrozenServices
from pilot_helpers import first_snapshot, wait_until
from textual import events
from textual.widgets import Input

from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen
from factoryctl.tui.widgets.filter_bar import FilterBar

BACKSPACE = "\x7f"


def post_burst(app: DashboardApp, text: str) -> None:
    """Post every key of `text` at once, as the terminal's driver does with one read (`\\x7f` is Backspace)."""
    for character in text:
        if character == BACKSPACE:
            app.post_message(events.Key("backspace", BACKSPACE))
        else:
            app.post_message(events.Key(character, character))


async def settle(pilot, field: Input, expected: str) -> None:
    """Let the burst through (every key), then until the screen's widgets handled all they were sent by then.

    A key that would come late (a Backspace on its round trip through the bindings) is in some queue still:
    `pilot.pause()` lets every widget of the screen handle what it was sent before, then waits for the app to idle.
    """
    await wait_until(pilot, lambda: field.value == expected, timeout=3.0, what=f"{expected!r} (got {field.value!r})")
    await pilot.pause()


async def test_backspaces_then_letters_in_one_burst_edit_the_filter_in_order(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash")
        bar = app.screen.query_one(FilterBar)
        post_burst(app, "abc")
        await settle(pilot, bar, "abc")
        post_burst(app, BACKSPACE * 3 + "n05")
        await settle(pilot, bar, "n05")
        assert bar.value == "n05"


@pytest.mark.parametrize(
    ("before", "burst", "expected"), [("450", BACKSPACE * 3 + "300", "300"), ("9999", BACKSPACE * 8 + "150", "150")]
)
async def test_a_corrected_cap_in_one_burst_is_the_value_typed(
    services: FrozenServices, before: str, burst: str, expected: str
) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerCapScreen), what="the cap dialog")
        await pilot.pause()
        watts = app.screen.query_one("#watts", Input)
        await pilot.press(*before)
        post_burst(app, burst)
        await settle(pilot, watts, expected)
        assert watts.value == expected


async def test_a_corrected_reason_in_one_burst_is_the_reason_typed(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the drain dialog")
        await pilot.pause()
        reason = app.screen.query_one("#reason", Input)
        await pilot.press(*"fan")
        post_burst(app, BACKSPACE * 3 + "psu")
        await settle(pilot, reason, "psu")
        assert reason.value == "psu"
