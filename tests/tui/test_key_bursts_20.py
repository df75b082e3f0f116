"""Keys typed right behind the key that moves the focus go where the focus moved, even in one burst.

Textual's `focus()` moves the focus only after the keys already on their way are handled: `/down` read in one go
sent `down` to the node table (its `d` opened the drain dialog), `/q01` quit the dashboard. In a dialog, two quick
Enters in the reason only took the first step (the second went to the input too, as a first step again).
"""

from __future__ import annotations

import pytest
from factory_data import FrozenServices, fixed_snapshot
from pilot_helpers import RecordingApp, first_snapshot, wait_until, when_armed
from textual import events

from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen
from factoryctl.tui.widgets.filter_bar import FilterBar
from factoryctl.tui.widgets.node_table import NodeTable

NAMED_KEYS = {"/": "slash", " ": "space", "\r": "enter"}


def burst(app: RecordingApp, text: str) -> None:
    """Post every key of `text` at once, as the terminal's driver does with one read."""
    for character in text:
        app.post_message(events.Key(NAMED_KEYS.get(character, character), character))


@pytest.mark.parametrize("text", ["down", "drained", "rack a", "stale", "q01", "a/b"])
async def test_every_key_of_a_burst_after_slash_goes_to_the_filter(text: str) -> None:
    services = FrozenServices(fixed_snapshot(count=200))
    app = RecordingApp(services)
    async with app.run_test(size=(160, 50)) as pilot:
        await first_snapshot(pilot)
        main = app.screen
        assert isinstance(main, MainScreen)
        table = main.query_one(NodeTable)
        burst(app, "/" + text)
        bar = main.query_one(FilterBar)
        await wait_until(pilot, lambda: bar.value == text or app.screen is not main or app._exit, what=repr(text))
        await pilot.pause()
        assert not app._exit, "a key typed into the filter quit the dashboard"
        assert app.screen is main, f"a key typed into the filter opened {type(app.screen).__name__}"
        assert bar.value == text
        assert main.focused is bar
        assert table.sort_column == "node", "a key typed into the filter sorted the table"
        assert app.notified == []
        assert services.calls == []


async def drain_dialog_with_reason(pilot, app: RecordingApp) -> ConfirmScreen:
    await first_snapshot(pilot)
    await pilot.press("d")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the drain dialog")
    await when_armed(pilot)
    await pilot.press("x")
    dialog = app.screen
    assert isinstance(dialog, ConfirmScreen)
    return dialog


async def test_two_quick_enters_in_the_reason_drain_the_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await drain_dialog_with_reason(pilot, app)
        burst(app, "\r\r")
        await wait_until(pilot, lambda: services.calls, what="the drain call")
        assert services.calls == [("drain", "demo01", "x")]
        assert isinstance(app.screen, MainScreen)


async def test_enter_a_key_enter_in_one_burst_is_still_no_confirmation(services: FrozenServices) -> None:
    """The key between the two Enters undoes the first step, also in one burst (typed into the reason)."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        dialog = await drain_dialog_with_reason(pilot, app)
        burst(app, "\ry\r")
        reason = dialog.query_one("#reason")
        await wait_until(pilot, lambda: dialog.ready and reason.value == "xy", what="the first step again")
        await pilot.pause()
        assert services.calls == []
        assert app.screen is dialog


async def test_two_quick_enters_on_the_resume_button_resume_the_node(services: FrozenServices) -> None:
    """No input: the confirm button has the focus; the second Enter comes while the first press still shows."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=2)  # demo03, drained
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the resume dialog")
        await when_armed(pilot)
        burst(app, "\r\r")
        await wait_until(pilot, lambda: services.calls, what="the resume call")
        assert services.calls == [("resume", "demo03")]


async def test_two_quick_enters_in_the_watts_cap_the_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerCapScreen), what="the cap dialog")
        await when_armed(pilot)
        burst(app, "300\r\r")
        await wait_until(pilot, lambda: services.calls, what="the cap call")
        assert services.calls == [("set_power_cap", "demo01", 300.0)]


@pytest.mark.parametrize(("text", "kept"), [("/rack a\rs", "rack a"), ("/down\x1bs", "")])
async def test_keys_after_enter_or_esc_in_the_filter_go_to_the_table(text: str, kept: str) -> None:
    """The bar hides at Enter (Esc); keys of the same burst after it act on the table, never typed there unseen."""
    services = FrozenServices(fixed_snapshot(count=200))
    app = RecordingApp(services)
    async with app.run_test(size=(160, 50)) as pilot:
        await first_snapshot(pilot)
        main = app.screen
        table = main.query_one(NodeTable)
        for character in text:
            key = {"/": "slash", " ": "space", "\r": "enter", "\x1b": "escape"}.get(character, character)
            app.post_message(events.Key(key, None if character == "\x1b" else character))
        await wait_until(pilot, lambda: table.sort_column != "node", what="the `s` after the filter closed")
        await pilot.pause()
        assert main.query_one(FilterBar).value == kept
        assert main.filter_text == kept
        assert main.focused is table
