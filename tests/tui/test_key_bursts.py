"""Text typed or pasted into the dashboard by mistake never drains, resumes or caps a node.

A command line (`ls -ld /tmp` + Enter, typed into the wrong window) comes as keys: at typing speed, or in one go
when the terminal's driver reads a burst. Its `d` opens the drain dialog and the letters after it go into the
reason; its one Enter is only the dialog's first step (the confirm button gets the focus), and an Enter within the
dialog's arming delay is ignored altogether. A second line (`pwd` + Enter) undoes that first step with its first key
(typed into the reason) and its Enter is a first step again; no letter confirms (a typed `yes`). A bracketed paste (Textual's `Paste` event) never triggers a key binding.
Esc always closes a dialog, even inside a burst.
"""

from __future__ import annotations

import pytest
from factory_data import FrozenServices
from pilot_helpers import RecordingApp, confirm_by_keys, first_snapshot, last_notice, wait_until, when_armed
from textual import events
from textual.widgets import Input, Label

from factoryctl.tui.app import DashboardApp
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.guarded_dialog import GuardedDialog
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen
from factoryctl.tui.widgets.node_table import NodeTable

NAMED_KEYS = {" ": "space", "\r": "enter", "\t": "tab", "\x1b": "escape"}


def key(character: str) -> events.Key:
    """The key event a terminal's driver posts for `character`."""
    return events.Key(NAMED_KEYS.get(character, character), None if character == "\x1b" else character)


def burst(app: DashboardApp, text: str, enter: bool = True) -> None:
    """Post every key of `text` (then Enter) at once, without waiting: what the terminal driver does."""
    for character in text:
        app.post_message(key(character))
    if enter:
        app.post_message(key("\r"))


@pytest.fixture
def no_arming_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """For text typed at typing speed: its Enter comes after the dialog's arming delay, so none is waited for."""
    monkeypatch.setattr(GuardedDialog, "ARM_DELAY_S", 0.0)


async def type_key_by_key(pilot, text: str) -> None:
    """Post the keys of `text` one by one, each handled before the next comes, as a person typing does.

    A fast typist's keys come 100 ms apart, long after the app handled the one before (a dialog a key opened has
    its focus), and seldom within the 0.2 s a button shows a press (a Space on it), when Textual ignores another;
    with `no_arming_delay` every Enter comes once the dialog counts keys, as at typing speed.
    """
    app = pilot.app

    def settled() -> bool:
        screen = app.screen
        if not isinstance(screen, GuardedDialog):
            return True
        return screen.focus_given_at is not None and not screen.query("#confirm.-active")

    for character in text:
        app.post_message(key(character))
        await pilot.pause()
        await wait_until(pilot, settled, what="the key handled")


def next_step_text(app: DashboardApp) -> str:
    prompt = app.screen.query_one("#next-step", Label)
    return str(prompt.render()) if prompt.display else ""


async def test_a_typed_burst_does_not_drain_the_node(services: FrozenServices, monkeypatch: pytest.MonkeyPatch) -> None:
    app = RecordingApp(services)
    # The arming delay lasts as long as this test needs (a loaded machine took longer than 0.5 s to get here).
    monkeypatch.setattr(GuardedDialog, "ARM_DELAY_S", 3600.0)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        burst(app, "ls -ld /tmp")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the drain dialog")
        await pilot.pause()
        await pilot.press("enter")  # a second Enter, still within the arming delay (tmux send-keys Enter)
        assert isinstance(app.screen, ConfirmScreen), "the burst's Enter confirmed the drain"
        assert not app.screen.ready, "an Enter within the arming delay took the first step"
        assert services.calls == []
        assert app.screen.query_one("#reason", Input).value == " /tmp"  # the burst's letters are in the reason
        assert "Enter ignored" in last_notice(app)
        monkeypatch.setattr(GuardedDialog, "ARM_DELAY_S", 0.0)  # the delay over
        await when_armed(pilot)
        await pilot.press("enter")  # a deliberate Enter, once armed, is the first step only
        assert isinstance(app.screen, ConfirmScreen)
        assert services.calls == []
        await pilot.press("enter")  # the second confirms
        await wait_until(pilot, lambda: services.calls, what="the drain call")
        assert services.calls == [("drain", "demo01", "/tmp")]


@pytest.mark.usefixtures("no_arming_delay")
@pytest.mark.parametrize("line", ["ls -ld /tmp\r", "ls -ld /t\t\r", "dd if=x of=y\r"])
async def test_a_command_typed_at_typing_speed_does_not_drain_the_node(services: FrozenServices, line: str) -> None:
    """Its Enter comes long after the arming delay: it focuses the confirm button and says what the next Enter does."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await type_key_by_key(pilot, line)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen), "a command line typed into the dashboard closed the drain dialog"
        await wait_until(pilot, lambda: dialog.ready, what="the Enter's first step")
        assert services.calls == [], "a command line typed into the dashboard drained a node"
        assert dialog.focused is dialog.query_one("#confirm")
        assert next_step_text(app) == "Press Enter again to drain demo01; Esc cancels."
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert services.calls == []


@pytest.mark.usefixtures("no_arming_delay")
async def test_a_command_typed_on_a_drained_node_does_not_resume_it(services: FrozenServices) -> None:
    """The resume dialog has no input: its confirm button has the focus, and one Enter on it is not enough."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=2)  # demo03, drained
        await type_key_by_key(pilot, "rm -f x.py y\r")  # its `y` before its Enter: no step
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        await wait_until(pilot, lambda: dialog.ready, what="the Enter's first step")
        assert services.calls == []
        await pilot.press("y")  # no second step: it undoes the first
        assert isinstance(app.screen, ConfirmScreen)
        assert not app.screen.ready
        assert services.calls == []
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the resume call")
        assert services.calls == [("resume", "demo03")]


@pytest.mark.usefixtures("no_arming_delay")
async def test_a_command_typed_at_typing_speed_does_not_cap_the_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await type_key_by_key(pilot, "p4500\r")  # its Enter once armed
        dialog = app.screen
        assert isinstance(dialog, PowerCapScreen)
        await wait_until(pilot, lambda: dialog.ready, what="the Enter's first step")
        assert services.calls == []
        assert next_step_text(app) == "Press Enter again to cap demo01 at 4500 W per GPU; Esc cancels."
        await pilot.press("shift+tab", "end", "0")  # back in the watts, a new value: its first step again
        assert app.screen.query_one("#watts", Input).value == "45000"
        assert not app.screen.ready
        assert next_step_text(app) == ""
        await pilot.press("tab", "enter")  # Tab to the button is no first step: this Enter is
        assert isinstance(app.screen, PowerCapScreen)
        assert services.calls == []
        button = app.screen.query_one("#confirm")
        await wait_until(pilot, lambda: not button.has_class("-active"), what="the press shown")  # Enter is ignored
        await pilot.press("enter")
        await wait_until(pilot, lambda: services.calls, what="the cap call")
        assert services.calls == [("set_power_cap", "demo01", 45000.0)]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [("ls -ld /tmp\rpwd\r", "/tmppwd"), ("cd /tmp\rls\r", "/tmpls"), ("ls -ld /tmp\ryes\r", "/tmpyes")],
)
@pytest.mark.usefixtures("no_arming_delay")
async def test_two_command_lines_typed_at_typing_speed_do_not_drain_the_node(
    services: FrozenServices, lines: str, reason: str
) -> None:
    """The second line's first key undoes the first line's step and goes into the reason; its Enter is a first step."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await type_key_by_key(pilot, lines)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen), "two command lines typed into the dashboard closed the drain dialog"
        await wait_until(pilot, lambda: dialog.ready, what="the second Enter's first step")
        assert services.calls == [], "two command lines typed into the dashboard drained a node"
        assert app.screen.query_one("#reason", Input).value.strip() == reason


@pytest.mark.usefixtures("no_arming_delay")
async def test_a_key_after_the_first_step_undoes_it_and_says_so(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await type_key_by_key(pilot, "ls -ld /tmp\rp")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert not dialog.ready
        assert dialog.focused is dialog.query_one("#reason")
        assert next_step_text(app).startswith("Not confirmed: a key came after Enter. Check, then press Enter twice")
        await pilot.press("s")  # typing goes on in the reason, after what was there (nothing selected)
        assert dialog.query_one("#reason", Input).value == " /tmpps"
        await confirm_by_keys(pilot)  # the operator's Enter, Enter still drains
        await wait_until(pilot, lambda: services.calls, what="the drain call")
        assert services.calls == [("drain", "demo01", "/tmpps")]


@pytest.mark.usefixtures("no_arming_delay")
async def test_a_typed_yes_does_not_resume_a_drained_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=2)  # demo03, drained
        await pilot.press("r")
        await type_key_by_key(pilot, "ls\ryes\r")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen), "a typed yes closed the resume dialog"
        await wait_until(pilot, lambda: dialog.ready, what="the last Enter's first step")
        assert services.calls == [], "a typed yes resumed a node"


@pytest.mark.usefixtures("no_arming_delay")
async def test_two_values_typed_at_typing_speed_do_not_cap_the_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await type_key_by_key(pilot, "p450\r450\r")  # its first Enter once armed
        dialog = app.screen
        assert isinstance(dialog, PowerCapScreen), "a second line of digits closed the cap dialog"
        await wait_until(pilot, lambda: dialog.ready, what="the second Enter's first step")
        assert services.calls == [], "a second line of digits capped the node"
        assert app.screen.query_one("#watts", Input).value == "450450"
        assert next_step_text(app) == "Press Enter again to cap demo01 at 450450 W per GPU; Esc cancels."


@pytest.mark.parametrize("armed_first", [False, True])
async def test_a_burst_on_a_drained_node_does_not_resume_it(services: FrozenServices, armed_first: bool) -> None:
    """However slow the machine (the dialog armed by then or not), the burst's `y` and Enter are no second step."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=2)  # demo03, drained
        burst(app, "r", enter=False)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the resume dialog")
        await pilot.pause()
        if armed_first:  # a loaded machine took longer than the arming delay to get here (it failed once so)
            await when_armed(pilot)
        burst(app, "y")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert services.calls == []


async def test_a_burst_does_not_cap_the_node(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        burst(app, "p150")
        await wait_until(pilot, lambda: isinstance(app.screen, PowerCapScreen), what="the cap dialog")
        await pilot.pause()
        await pilot.press("enter")
        assert isinstance(app.screen, PowerCapScreen)
        assert app.screen.query_one("#watts", Input).value == "150"
        assert services.calls == []


@pytest.mark.parametrize(("row", "text"), [(0, "d\x1b"), (0, "p4\x1b"), (2, "r\x1b"), (2, "rn")])
async def test_esc_in_a_burst_closes_the_dialog(services: FrozenServices, row: int, text: str) -> None:
    """`d` + Esc read in one go: the Esc came before the dialog's input had focus, and still cancels."""
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        app.screen.query_one(NodeTable).move_cursor(row=row)
        burst(app, text, enter=False)
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, MainScreen), f"{text!r} left {type(app.screen).__name__} open"
        assert services.calls == []


@pytest.mark.parametrize("text", ["ls -ld /tmp\r", "d\r", "p450\ry\r", "srep"])
async def test_a_paste_on_the_main_screen_triggers_no_key(services: FrozenServices, text: str) -> None:
    app = RecordingApp(services)
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
    app = RecordingApp(services)
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
