"""The base of the dialogs that change a node (drain, resume, power cap): keys typed by mistake never confirm them.

Text typed or pasted into the dashboard by mistake arrives as keys, so confirming by key takes two steps a single
command line cannot give: the first Enter only focuses the confirm button and says what the next one does; only an
Enter that comes next confirms. Any other key in between (but Esc, Tab and the arrows) undoes the first step: focus
goes back to the input and the key is typed into it. No letter confirms. A click on the confirm button confirms at
once. Nothing counts in the dialog's first `ARM_DELAY_S`, so a burst with several Enters is ignored (and said so);
keys of a burst that arrived before the input had focus are typed into it, not dropped. Esc (and Cancel, `n`)
always closes the dialog at once.

Subclasses compose a `#confirm` button (a `ConfirmButton`) and a `#next-step` label, hidden until the first step.
"""

from __future__ import annotations

import time
from typing import ClassVar, TypeVar

from textual import events
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label

ResultType = TypeVar("ResultType")


class ConfirmButton(Button):
    """The confirm button, which tells a press by Enter (a key: maybe typed by mistake) from a click."""

    #: Presses by Enter not handled yet (counted down by `GuardedDialog.pressed_by_key`): two quick Enters are two.
    key_presses = 0

    def action_press(self) -> None:
        """Enter on the button: pressed as a key press.

        Also while the last press still shows (Textual's ignores those): two quick Enters are the two steps.
        """
        if not self.disabled and self.display:  # else `press()` sends no press to count down
            self.key_presses += 1
        self.press()


class GuardedDialog(ModalScreen[ResultType]):
    """A modal dialog confirmed by a second deliberate step (`take_first_step`), never in its first `ARM_DELAY_S`."""

    #: Seconds after opening during which nothing confirms the dialog (a paste or a typed burst takes milliseconds).
    ARM_DELAY_S: ClassVar[float] = 0.5
    #: Letters that cancel when the dialog has no text input to type them into (a stray one included).
    CANCEL_LETTERS: ClassVar[frozenset[str]] = frozenset({"n", "q"})
    #: Keys that move around the dialog (or leave it) after the first step without undoing it.
    NAVIGATION_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"enter", "escape", "tab", "shift+tab", "left", "right", "up", "down"}
    )

    def __init__(self) -> None:
        super().__init__()
        #: When the dialog was asked for (the key that opened it was being handled): the arming delay counts from here.
        self.opened_at = time.monotonic()
        #: When the dialog gave its first focus (Textual's event clock, `time.monotonic`); None until then.
        self.focus_given_at: float | None = None
        #: Whether the first step was taken: the confirm button has focus and an Enter on it confirms.
        self.ready = False

    @property
    def armed(self) -> bool:
        """Whether a key or click counts now (not in the dialog's first `ARM_DELAY_S`)."""
        return time.monotonic() - self.opened_at >= self.ARM_DELAY_S

    def next_step(self) -> str:
        """What the second step does, for "press Enter again to …" (`drain demo01`)."""
        raise NotImplementedError

    def text_input(self) -> Input | None:
        """The dialog's input that stray keys are typed into (the reason, the watts), if it has one."""
        inputs = self.query(Input)
        return inputs.first() if inputs else None

    def give_first_focus(self, widget: Widget) -> None:
        """Focus `widget` (call it from `on_mount`): keys from here on go to it, earlier ones came to the dialog."""
        widget.focus()
        self.focus_given_at = time.monotonic()

    def take_first_step(self) -> None:
        """The first Enter (armed): focus the confirm button and say that the next Enter confirms."""
        if not self.armed:
            self._say_ignored("Enter")
            return
        self.ready = True
        # now, not `focus()` (after the keys already on their way): a second Enter right behind this one goes to it
        self.set_focus(self.query_one("#confirm", Button))
        prompt = self.query_one("#next-step", Label)
        prompt.update(f"Press Enter again to {self.next_step()}; Esc cancels.")
        prompt.display = True

    def enter_in_input(self) -> bool:
        """An Enter in the dialog's input: the first step, or the second when it came right behind the first.

        Two quick Enters both reach the input when the second was sent on before the first one moved the focus: if the
        confirm button has the focus (the first step gave it) the second counts as an Enter on it. Returns whether it
        confirms.
        """
        if self.ready and self.focused is self.query_one("#confirm", Button):
            return self.confirmation_counts()
        self.take_first_step()
        return False

    def unready(self) -> None:
        """The value being confirmed changed (typed in the input): the next Enter is a first step again.

        The prompt hides, unless it says why the first step was undone (`undo_first_step`).
        """
        if self.ready:
            self.ready = False
            self.query_one("#next-step", Label).display = False

    def undo_first_step(self, event: events.Key) -> None:
        """A key other than Enter after the first step (more typing, maybe a second command line): undo the step.

        The focus goes back to the input and a printable key is typed into it; the prompt says what happened.
        Without an input the focus stays on the confirm button and the key is left to the bindings (`n` cancels).
        """
        self.unready()
        prompt = self.query_one("#next-step", Label)
        # not `next_step()`: the key is typed into the value after this (the watts it would name are stale)
        prompt.update("Not confirmed: a key came after Enter. Check, then press Enter twice to confirm; Esc cancels.")
        prompt.display = True
        field = self.text_input()
        if field is None:
            return
        event.stop()
        event.prevent_default()
        self.set_focus(field)  # now, so that the keys after this one go to the input
        field.call_later(self._continue_typing, field, event.character if event.is_printable else None)

    @staticmethod
    def _continue_typing(field: Input, character: str | None) -> None:
        """Once `field` has handled its focus (which selects its text): cursor at the end, `character` typed."""
        field.cursor_position = len(field.value)
        if character:
            field.insert_text_at_cursor(character)

    def confirmation_counts(self, clicked: bool = False) -> bool:
        """Whether an Enter on the confirm button, or a click, confirms now; if not, take the first step or say why.

        A click confirms once armed; an Enter only once ready (else it takes the first step).
        """
        if not self.armed:
            self._say_ignored("Enter")
            return False
        if self.ready or clicked:
            return True
        self.take_first_step()
        return False

    @staticmethod
    def pressed_by_key(button: Button) -> bool:
        """Whether `button` was pressed by Enter rather than clicked (counting that press as handled)."""
        if isinstance(button, ConfirmButton) and button.key_presses > 0:
            button.key_presses -= 1
            return True
        return False

    def _say_ignored(self, key: str) -> None:
        self.app.bell()
        self.notify(
            f"{key} ignored: it came right after the dialog opened (keys typed or pasted by mistake?). "
            f"Check the dialog, then press Enter twice to confirm, or Esc to cancel.",
            title="not confirmed",
            severity="warning",
            timeout=6,
            markup=False,
        )

    def _came_before_focus(self, event: events.Event) -> bool:
        """Whether `event` was made before the dialog gave its first focus (so it was sent to the dialog itself).

        A key that reaches the dialog later bubbled up from a focused widget: it is the widgets' and the bindings'.
        """
        return self.focus_given_at is None or event.time < self.focus_given_at

    def type_stray_key(self, event: events.Key) -> None:
        """Type a key that was on its way elsewhere when the dialog opened into its input; never run it as a key.

        Such a key was sent to the screen under the dialog (its bindings are checked once it bubbles up, by then
        against the dialog's) or to the dialog before its input had focus: part of the burst that opened it. Only a
        key that cancels is run: Esc always, `n` or `q` when there is no input to type them into.
        """
        event.stop()
        event.prevent_default()
        field = self.text_input()
        if event.key == "escape" or (field is None and event.key in self.CANCEL_LETTERS):
            self.action_cancel()
        elif field is not None and event.is_printable and event.character:
            field.insert_text_at_cursor(event.character)
        elif event.key == "enter":
            self._say_ignored("Enter")

    def on_key(self, event: events.Key) -> None:
        """A key that reached the dialog itself before its input had focus is a stray key (see `type_stray_key`).

        A later one bubbled up from a focused widget: after the first step any on a button but Enter, Esc, Tab and
        the arrows undoes it (`undo_first_step`); the rest is left to the buttons and the bindings.
        """
        if self._came_before_focus(event):
            self.type_stray_key(event)
        elif self.ready and event.key not in self.NAVIGATION_KEYS and not isinstance(self.focused, Input):
            self.undo_first_step(event)

    def on_paste(self, event: events.Paste) -> None:
        """A paste that reached the dialog itself (nothing had focus yet) goes into its input, first line only."""
        field = self.text_input()
        event.stop()
        if field is not None and event.text and self._came_before_focus(event):
            field.insert_text_at_cursor(event.text.splitlines()[0])

    def action_cancel(self) -> None:
        """Esc, Cancel: change nothing, at once (never guarded)."""
        self.dismiss(None)
