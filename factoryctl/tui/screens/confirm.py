"""A yes/no question before anything changes on a node; optionally asks why (a drain's reason).

Keys: Esc cancels; `y` answers yes and `n` or `q` no, except while the reason's input has focus (there they are
letters of the reason, and Enter confirms). The dialog has its own footer, so the keys shown are the ones that work.
Nothing confirms it in its first moment (`GuardedDialog`): keys typed or pasted by mistake never drain a node.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label

from factoryctl.tui.screens.guarded_dialog import GuardedDialog

#: Single-letter answers, disabled while a text input has focus (the letters are typed there).
LETTER_ACTIONS = frozenset({"yes", "no"})


class ConfirmScreen(GuardedDialog[str | None]):
    """Dismisses with the reason typed (`""` when none was asked) on yes, None on no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="Esc", tooltip="cancel: change nothing"),
        Binding("y", "yes", "Yes", tooltip="yes (drain, resume; not while typing in an input: Enter there)"),
        Binding("n", "no", "No", tooltip="no (drain, resume; not while typing in an input)"),
        Binding("q", "no", "Cancel", show=False, tooltip="cancel (not while typing in an input)"),
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
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Focus the reason when there is one, else the confirm button."""
        first = self.query_one("#reason", Input) if self.ask_reason is not None else self.query_one("#confirm", Button)
        self.give_first_focus(first)

    def _reason(self) -> str:
        return self.query_one("#reason", Input).value.strip() if self.ask_reason is not None else ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the reason confirms (once the dialog is armed)."""
        event.stop()
        if self.confirmation_counts():
            self.dismiss(self._reason())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Confirm (once the dialog is armed) or cancel."""
        event.stop()
        if event.button.id != "confirm":
            self.dismiss(None)
        elif self.confirmation_counts(str(event.button.label)):
            self.dismiss(self._reason())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`y`, `n` and `q` are letters while the reason's input has focus."""
        return not (action in LETTER_ACTIONS and isinstance(self.focused, Input))

    def action_cancel(self) -> None:
        """Esc: change nothing."""
        self.dismiss(None)

    def action_yes(self) -> None:
        """`y`: confirm, as the confirm button does."""
        if self.confirmation_counts("y"):
            self.dismiss(self._reason())

    def action_no(self) -> None:
        """`n` or `q`: change nothing."""
        self.dismiss(None)
