"""`?` lists the keys that work without a binding of ours: Ctrl-Q, Enter twice in a dialog, ← → in the table.

Ctrl-Q quits (Textual's own key, exit 0) and ← → scroll the factory table sideways, but neither was in the list;
nor was the second Enter that confirms a dialog.
"""

from __future__ import annotations

from factory_data import FrozenServices
from pilot_helpers import first_snapshot, plain
from textual.widgets import Static

from factoryctl.tui.app import make_app
from factoryctl.tui.screens.help import HelpScreen


async def keys_listed(read_only: bool) -> str:
    app = make_app(FrozenServices(), read_only=read_only)
    async with app.run_test(size=(100, 50)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        return plain(app.screen.query_one("#keys", Static).content, width=160)


async def test_the_key_list_names_ctrl_q_enter_twice_and_sideways_scrolling() -> None:
    text = await keys_listed(read_only=False)
    assert "Ctrl-Q" in text
    assert "quit (exit status 0)" in text
    assert "Enter, Enter" in text
    assert "the next confirms" in text
    assert "← →" in text
    assert "sideways" in text


async def test_read_only_lists_no_dialog_keys() -> None:
    text = await keys_listed(read_only=True)
    assert "Ctrl-Q" in text
    assert "Enter, Enter" not in text
