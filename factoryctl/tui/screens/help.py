"""`?`: every key of the dashboard, built from the screens' own bindings so it cannot drift from them."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from factoryctl.tui.screens.lifecycle import quitting
from factoryctl.tui.screens.node_actions import WRITE_ACTIONS

#: Keys that work without a binding of ours to list (Textual's widgets and app, or a dialog's two steps), by section.
BUILT_IN_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "Factory": (
        ("↑ ↓ PgUp PgDn", "move in a table"),
        ("← →", "scroll the node table sideways (long names, many GPUs)"),
        ("Enter, click", "open the node"),
    ),
    "Node screen": (("Tab, Shift-Tab", "move between the GPU table and the GPU's detail (↑ ↓ PgUp PgDn scroll it)"),),
    "Dialogs": (
        ("Enter, Enter", "confirm: the first focuses the confirm button, the next confirms (another key undoes it)"),
    ),
    "Everywhere": (("Ctrl-Q", "quit (exit status 0), but in a dialog or this list"),),
}


KEY_NAMES = {
    "slash": "/",
    "question_mark": "?",
    "escape": "Esc",
    "esc": "Esc",
    "enter": "Enter",
    "home": "Home",
    "end": "End",
}


def _key_name(binding: Binding) -> str:
    keys = binding.key.split(",")
    if binding.key_display and len(keys) == 1:
        return KEY_NAMES.get(binding.key_display, binding.key_display)
    return " ".join(KEY_NAMES.get(k, k) for k in keys)


def keys_table(sections: list[tuple[str, list[BindingType]]], read_only: bool) -> Table:
    """A two-column table of keys per section; write actions left out in read-only mode."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for title, bindings in sections:
        table.add_row(Text(title, style="bold underline"), "")
        for binding in bindings:
            if not isinstance(binding, Binding) or not binding.tooltip:
                continue  # untitled ones are Textual's own movement keys, listed once in BUILT_IN_KEYS
            if read_only and binding.action in WRITE_ACTIONS:
                continue
            table.add_row(_key_name(binding), binding.tooltip)
        for key, what in BUILT_IN_KEYS.get(title, ()):
            table.add_row(key, what)
        table.add_row("", "")
    if read_only:
        table.add_row("", Text("read-only: drain, resume and power cap are disabled", style="italic"))
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, by screen; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(self, sections: list[tuple[str, list[BindingType]]], read_only: bool) -> None:
        super().__init__()
        self.sections = sections
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        """The keys table in a scrollable dialog."""
        with VerticalScroll(id="dialog"):
            yield Static(keys_table(self.sections, self.read_only), id="keys", markup=False)

    def on_mount(self) -> None:
        """Title the dialog."""
        if quitting(self):  # built as the dashboard quits: none of its widgets are there
            return
        self.query_one("#dialog").border_title = "keys (Esc closes)"

    def action_close(self) -> None:
        """Close."""
        self.dismiss()
