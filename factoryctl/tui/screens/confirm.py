"""A yes/no question before anything changes on a node; optionally asks why (a drain's reason)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ConfirmScreen(ModalScreen[str | None]):
    """Dismisses with the reason typed (`""` when none was asked) on yes, None on no."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, question: str, confirm_label: str = "Confirm", ask_reason: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.confirm_label = confirm_label
        self.ask_reason = ask_reason

    def compose(self) -> ComposeResult:
        """Question, optional reason, two buttons."""
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            if self.ask_reason is not None:
                yield Input(placeholder=self.ask_reason, id="reason")
            with Horizontal(id="buttons"):
                yield Button(self.confirm_label, variant="warning", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Focus the reason when there is one, else the confirm button."""
        if self.ask_reason is not None:
            self.query_one("#reason", Input).focus()
        else:
            self.query_one("#confirm", Button).focus()

    def _reason(self) -> str:
        return self.query_one("#reason", Input).value.strip() if self.ask_reason is not None else ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the reason confirms."""
        event.stop()
        self.dismiss(self._reason())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Confirm or cancel."""
        event.stop()
        self.dismiss(self._reason() if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        """Esc: change nothing."""
        self.dismiss(None)
