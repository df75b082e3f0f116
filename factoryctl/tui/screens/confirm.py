"""A yes/no question before anything changes on a node; optionally asks why (a drain's reason).

Keys: Esc cancels; Enter in the reason (or on the confirm button) focuses the confirm button and says what the next
Enter does, and only a second Enter right after it confirms (`GuardedDialog`: another key in between, such as a
second command line typed by mistake, undoes the first step; no letter confirms, so a typed `yes` never does); `n`
or `q` answer no, except while the reason's input has focus (there they are letters of the reason). The dialog has
its own footer, so the keys shown are the ones that work.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label

from factoryctl.tui.screens.guarded_dialog import ConfirmButton, GuardedDialog
from factoryctl.tui.screens.lifecycle import quitting
from factoryctl.tui.widgets.ordered_input import OrderedInput

#: Single-letter answers, disabled while a text input has focus (the letters are typed there).
LETTER_ACTIONS = frozenset({"no"})


class ConfirmScreen(GuardedDialog[str | None]):
    """Dismisses with the reason typed (`""` when none was asked) on yes, None on no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="Esc", tooltip="cancel: change nothing"),
        Binding("n", "no", "No", tooltip="no (drain, resume; not while typing in an input)"),
        Binding("q", "no", "Cancel", show=False, tooltip="cancel (not while typing in an input)"),
    ]

    def __init__(
        self, question: str, confirm_does: str, confirm_label: str = "Confirm", ask_reason: str | None = None
    ) -> None:
        super().__init__()
        self.question = question
        self.confirm_does = confirm_does  # what confirming does, for "press Enter again to drain demo01"
        self.confirm_label = confirm_label
        self.ask_reason = ask_reason

    def compose(self) -> ComposeResult:
        """Question, optional reason, two buttons."""
        with Vertical(id="dialog"):
            yield Label(self.question, id="question", markup=False)
            if self.ask_reason is not None:
                yield OrderedInput(placeholder=self.ask_reason, id="reason")
            yield Label("", id="next-step", markup=False)
            with Horizontal(id="buttons"):
                yield ConfirmButton(self.confirm_label, variant="warning", id="confirm")
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Focus the reason when there is one, else the confirm button (whose first Enter is only a first step)."""
        if quitting(self):  # built as the dashboard quits: none of its widgets are there
            return
        first = self.query_one("#reason", Input) if self.ask_reason is not None else self.query_one("#confirm", Button)
        self.give_first_focus(first)

    def _reason(self) -> str:
        return self.query_one("#reason", Input).value.strip() if self.ask_reason is not None else ""

    def next_step(self) -> str:
        """What confirming does (`drain demo01`)."""
        return self.confirm_does

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the reason is the first step (the confirm button gets the focus); one right behind it the second."""
        event.stop()
        if self.enter_in_input():
            self.dismiss(self._reason())

    def on_input_changed(self, event: Input.Changed) -> None:
        """A reason edited after the first step needs its first step again."""
        event.stop()
        self.unready()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Confirm (a click once armed; Enter once ready) or cancel."""
        event.stop()
        if event.button.id != "confirm":
            self.dismiss(None)
        elif self.confirmation_counts(clicked=not self.pressed_by_key(event.button)):
            self.dismiss(self._reason())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`n` and `q` are letters while the reason's input has focus."""
        return not (action in LETTER_ACTIONS and isinstance(self.focused, Input))

    def action_no(self) -> None:
        """`n` or `q`: change nothing."""
        self.dismiss(None)
