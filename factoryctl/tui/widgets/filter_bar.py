"""The `/` filter: a node set (`demo[01-04]`, `@rack-a`) or words (`down`, `drained`, `rack a`)."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
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
        #: Where the focus goes back when the bar closes (the node table), and the keys that come after.
        self.back_to: Widget | None = None

    def open(self, back_to: Widget) -> None:
        """Show the bar and focus it now, so that the keys typed right after `/` go to it.

        Not `focus()`: that moves the focus only after the keys already on their way are handled, and those (`/down`
        in one burst) would reach the node table and the screen's bindings (`d` drains, `q` quits).
        """
        self.back_to = back_to
        self.add_class("-open")
        self.screen.set_focus(self)

    def _close(self) -> None:
        """Hide the bar and give the focus back now (the keys after the Enter or Esc go there)."""
        self.remove_class("-open")
        if self.back_to is not None:
            self.screen.set_focus(self.back_to)

    async def _on_key(self, event: events.Key) -> None:
        """A key sent to the bar before it closed (`/down`, Enter, `s` in one burst) goes where the focus went back.

        The bar is hidden by then: typed there, the key would change the filter unseen.
        """
        if self.has_class("-open") or self.back_to is None or self.back_to is self:
            return  # the input's own handling (`OrderedInput`, then `Input`)
        event.stop()
        event.prevent_default()
        # as the app sends a key on (marked forwarded, so it is not sent on again once it bubbles up to the app)
        self.back_to._forward_event(events.Key(event.key, event.character))

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as one types."""
        event.stop()
        self.post_message(self.FilterChanged(event.value))

    async def action_submit(self) -> None:
        """Enter: close now, as the key is handled (the keys right behind it go to the table), then say so."""
        self._close()
        await super().action_submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter and go back to the table.

        The bar hides (the table's subtitle says `filter: ...`), so at 80x24 a kept filter costs no rows of the table.
        """
        event.stop()
        self._close()
        self.post_message(self.FilterClosed())

    def action_clear_filter(self) -> None:
        """Clear, hide, and go back."""
        self.value = ""
        self._close()
        self.post_message(self.FilterChanged(""))
        self.post_message(self.FilterClosed())
