"""Text typed or pasted into the dashboard by mistake never drains, resumes or caps a node.

A burst of keys (`ls -ld /tmp` + Enter, typed into the wrong window) is delivered in one go, the way a terminal's
driver posts them: the `d` opens the drain dialog, the letters after it go into the reason, and an Enter that comes
with them (or within the dialog's arming delay) is ignored instead of confirming. A bracketed paste (Textual's
`Paste` event) never triggers a key binding.
"""

from __future__ import annotations

import pytest
from factory_data import FrozenServices
from pilot_helpers import first_snapshot, wait_until
from textual import events
from textual.widgets import Input

from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.guarded_dialog import GuardedDialog
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen
from factoryctl.tui.widgets.node_table import NodeTable


def burst(app: DashboardApp, text: str, enter: bool = True) -> None:
    """Post every key of `text` (then Enter) at once, without waiting: what the terminal driver does."""
    for character in text:
        key = "space" if character == " " else character
        app.post_message(events.Key(key, character))
    if enter:
        app.post_message(events.Key("enter", "\r"))


def last_notice(app: DashboardApp) -> str:
    return list(app._notifications)[-1].message if app._notifications else ""


async def test_a_typed_burst_does_not_drain_the_node(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        burst(app, "ls -ld /tmp")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the drain dialog")
        await pilot.pause()
        await pilot.press("enter")  # a second Enter, still within the arming delay (tmux send-keys Enter)
        assert isinstance(app.screen, ConfirmScreen), "the burst's Enter confirmed the drain"
        assert services.calls == []
        assert app.screen.query_one("#reason", Input).value == " /tmp"  # the burst's letters are in the reason
        assert "Enter ignored" in last_notice(app)
        await wait_until(pilot, lambda: app.screen.armed, what="the dialog armed")
        await pilot.press("enter")  # a deliberate Enter, once armed, confirms
        await wait_until(pilot, lambda: services.calls, what="the drain call")
        assert services.calls == [("drain", "demo01", "/tmp")]


async def test_a_burst_on_a_drained_node_does_not_resume_it(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=2)  # demo03, drained
        burst(app, "r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the resume dialog")
        await pilot.pause()
        burst(app, "y")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert services.calls == []


async def test_a_burst_does_not_cap_the_node(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        burst(app, "p150")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerCapScreen), what="the cap dialog")
        await pilot.pause()
        await pilot.press("enter")
        assert isinstance(app.screen, PowerCapScreen)
        assert app.screen.query_one("#watts", Input).value == "150"
        assert services.calls == []


@pytest.mark.parametrize("text", ["ls -ld /tmp\r", "d\r", "p450\ry\r", "srep"])
async def test_a_paste_on_the_main_screen_triggers_no_key(services: FrozenServices, text: str) -> None:
    app = make_app(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        sort = table.sort_column
        app.post_message(events.Paste(text))
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert table.sort_column == sort
        assert app.screen.query_one("#panels").display
        assert services.calls == []


async def test_a_paste_into_the_drain_dialog_fills_the_reason_only(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("d")
        app.post_message(events.Paste("bad fan\nrm -rf x\n"))
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.query_one("#reason", Input).value == "bad fan"
        assert services.calls == []


def test_every_dialog_that_changes_a_node_is_guarded() -> None:
    assert issubclass(ConfirmScreen, GuardedDialog)
    assert issubclass(PowerCapScreen, GuardedDialog)
    assert GuardedDialog.ARM_DELAY_S >= 0.3  # longer than any burst, short enough not to be noticed
