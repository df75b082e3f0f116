"""The `/` filter: a node set (`demo[01-04]`, `@rack-a`) or words (`down`, `drained`, `rack a`)."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from factoryctl.tui.widgets.ordered_input import OrderedInput


class FilterBar(OrderedInput):
    """An input that filters the node table as one types; Enter keeps the filter, Esc clears it."""

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter")]  # noqa: RUF012 - Textual's convention

    DEFAULT_CSS = """
    FilterBar { dock: bottom; display: none; }
    FilterBar.-open { display: block; }
    """

    class FilterChanged(Message):
        """The filter text changed (also when cleared)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class FilterClosed(Message):
        """The bar was closed; focus should go back to the table."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="filter: demo[01-04], @rack-a, down, drained, rack a …", id=id)

    def open(self) -> None:
        """Show the bar and focus it."""
        self.add_class("-open")
        self.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as one types."""
        event.stop()
        self.post_message(self.FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter and go back to the table.

        The bar hides (the table's subtitle says `filter: ...`), so at 80x24 a kept filter costs no rows of the table.
        """
        event.stop()
        self.remove_class("-open")
        self.post_message(self.FilterClosed())

    def action_clear_filter(self) -> None:
        """Clear, hide, and go back."""
        self.value = ""
        self.remove_class("-open")
        self.post_message(self.FilterChanged(""))
        self.post_message(self.FilterClosed())
