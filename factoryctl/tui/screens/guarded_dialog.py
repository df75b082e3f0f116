"""The base of the dialogs that change a node (drain, resume, power cap): keys typed by mistake never confirm them.

Text typed or pasted into the dashboard's window by mistake (`ls -ld /tmp` + Enter) arrives as one burst of keys:
its `d` opens the drain dialog, and the Enter that follows must not confirm it. So a dialog arms only
`ARM_DELAY_S` after it opened (longer than any burst, too short for a person to notice): an Enter, `y` or a click
on the confirm button before that is ignored and said so. The keys of the burst that reached the dialog before its
input had focus are typed into that input (the reason, the watts) instead of being dropped, so what happened shows.
"""

from __future__ import annotations

import time
from typing import ClassVar, TypeVar

from textual import events
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input

ResultType = TypeVar("ResultType")


class GuardedDialog(ModalScreen[ResultType]):
    """A modal dialog whose confirmation only counts once it has been open for `ARM_DELAY_S`."""

    #: Seconds after opening during which nothing confirms the dialog (a paste or a typed burst takes milliseconds).
    ARM_DELAY_S: ClassVar[float] = 0.5

    def __init__(self) -> None:
        super().__init__()
        #: When the dialog was asked for (the key that opened it was being handled): the arming delay counts from here.
        self.opened_at = time.monotonic()
        #: When the dialog gave its first focus (Textual's event clock, `time.monotonic`); None until then.
        self.focus_given_at: float | None = None

    @property
    def armed(self) -> bool:
        """Whether a confirmation counts now."""
        return time.monotonic() - self.opened_at >= self.ARM_DELAY_S

    def text_input(self) -> Input | None:
        """The dialog's input that stray keys are typed into (the reason, the watts), if it has one."""
        inputs = self.query(Input)
        return inputs.first() if inputs else None

    def give_first_focus(self, widget: Widget) -> None:
        """Focus `widget` (call it from `on_mount`): keys from here on go to it, earlier ones came to the dialog."""
        widget.focus()
        self.focus_given_at = time.monotonic()

    def _came_before_focus(self, event: events.Event) -> bool:
        """Whether `event` was made before the dialog gave its first focus (so it was sent to the dialog itself).

        A key that reaches the dialog later bubbled up from a focused widget: it is the widgets' and the bindings'.
        """
        return self.focus_given_at is None or event.time < self.focus_given_at

    def confirmation_counts(self, key: str = "Enter") -> bool:
        """Whether to act on a confirmation now; if not, say why (`key` names what was ignored) and ring the bell."""
        if self.armed:
            return True
        self._say_ignored(key)
        return False

    def _say_ignored(self, key: str) -> None:
        self.app.bell()
        self.notify(
            f"{key} ignored: it came right after the dialog opened (keys typed or pasted by mistake?). "
            f"Check the dialog, then press {key} again to confirm, or Esc to cancel.",
            title="not confirmed",
            severity="warning",
            timeout=6,
            markup=False,
        )

    def type_stray_key(self, event: events.Key) -> None:
        """Type a key that was on its way elsewhere when the dialog opened into its input; never run it as a key.

        Such a key was sent to the screen under the dialog (its bindings are checked once it bubbles up, by then
        against the dialog's) or to the dialog before its input had focus: part of the burst that opened it.
        """
        event.stop()
        event.prevent_default()
        field = self.text_input()
        if field is not None and event.is_printable and event.character:
            field.insert_text_at_cursor(event.character)
        elif event.key == "enter":
            self._say_ignored("Enter")

    def on_key(self, event: events.Key) -> None:
        """A key that reached the dialog itself before its input had focus is a stray key (see `type_stray_key`).

        A later one bubbled up from a focused button: it is left to the buttons and the bindings.
        """
        if self._came_before_focus(event):
            self.type_stray_key(event)

    def on_paste(self, event: events.Paste) -> None:
        """A paste that reached the dialog itself (nothing had focus yet) goes into its input, first line only."""
        field = self.text_input()
        event.stop()
        if field is not None and event.text and self._came_before_focus(event):
            field.insert_text_at_cursor(event.text.splitlines()[0])
