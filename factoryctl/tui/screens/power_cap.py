"""Ask for a node's new GPU power cap, show the valid range and what the value will be clamped to, then confirm.

A node with a lost GPU (fallen off the bus: the agent refuses a cap of the whole node) is capped on the GPUs that
answer, and the dialog names them before anything changes: `caps demo04/0,2-7: GPU 1 is lost`.

Esc cancels; `q` cancels too once the focus is on a button (in the input it is a key that types nothing). Enter in
the watts focuses the confirm button and says what the next Enter does; only that second Enter (or a click on the
button) sets the cap (`GuardedDialog`: a command line typed or pasted by mistake has one Enter, so it never caps; a
key between the two Enters, such as a second line typed by mistake, is typed into the watts and undoes the first).
"""

from __future__ import annotations

import math
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label

from factoryctl.model.folding import fold_indexes
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.gpu_bars import is_lost
from factoryctl.tui.screens.guarded_dialog import ConfirmButton, GuardedDialog
from factoryctl.tui.screens.lifecycle import quitting
from factoryctl.tui.widgets.ordered_input import OrderedInput


def answering_gpus(sample: NodeSample) -> list[int] | None:
    """The GPUs a cap addresses: None for every GPU of the node, or the indexes of those not lost when one is."""
    if not any(is_lost(g) for g in sample.gpus):
        return None
    return [g.index for g in sample.gpus if not is_lost(g)]


def addressed_note(sample: NodeSample) -> str:
    """`caps demo04/0,2-7: GPU 1 is lost` when a GPU is lost, else `""` (every GPU is capped)."""
    answering = answering_gpus(sample)
    if answering is None:
        return ""
    lost = [g.index for g in sample.gpus if is_lost(g)]
    were = "is" if len(lost) == 1 else "are"
    return f"caps {sample.node}/{fold_indexes(answering)}: GPU {fold_indexes(lost)} {were} lost"


def cap_range(sample: NodeSample) -> tuple[float | None, float | None]:
    """The range every GPU of the node accepts (highest minimum, lowest maximum)."""
    lows = [g.power_limit_min_w for g in sample.gpus if g.power_limit_min_w is not None]
    highs = [g.power_limit_max_w for g in sample.gpus if g.power_limit_max_w is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def clamp_note(watts: float, low: float | None, high: float | None) -> str:
    """What the agent will enforce for a request of `watts`."""
    if low is not None and watts < low:
        return f"below the minimum: will be clamped to {fmt.watts(low)}"
    if high is not None and watts > high:
        return f"above the maximum: will be clamped to {fmt.watts(high)}"
    return f"each GPU addressed will be capped at {watts:g} W"


def input_note(text: str, low: float | None, high: float | None) -> str:
    """What the dialog says under the input for `text`: why it is refused, or what the agent will enforce."""
    text = text.strip()
    if not text:
        return "type a positive number of watts"
    try:
        watts = float(text)
    except ValueError:
        return f"{text} is not a number: type a positive number of watts"
    if not math.isfinite(watts) or watts <= 0:
        return f"{text} W is not a cap: type a positive number of watts"
    return clamp_note(watts, low, high)


class PowerCapScreen(GuardedDialog[float | None]):
    """Dismisses with the watts to request, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="Esc", tooltip="change nothing"),
        Binding("q", "cancel", "Cancel", show=False, tooltip="change nothing (not in the watts input)"),
    ]

    def __init__(self, sample: NodeSample) -> None:
        super().__init__()
        self.sample = sample
        self.low, self.high = cap_range(sample)

    def compose(self) -> ComposeResult:
        """Range, input, what will happen, buttons."""
        s = self.sample
        limits = sorted({g.power_limit_w for g in s.gpus if g.power_limit_w is not None})
        now = ", ".join(fmt.watts(w) for w in limits) or "unknown"
        answering = answering_gpus(s)
        question = (
            f"Set the power cap of every GPU on {s.node} ({len(s.gpus)} GPUs)"
            if answering is None
            else f"Set the power cap of the GPUs of {s.node} that answer ({len(answering)} of {len(s.gpus)})"
        )
        with Vertical(id="dialog"):
            yield Label(question, id="question", markup=False)
            if answering is not None:
                yield Label(addressed_note(s), id="addressed", markup=False)
            yield Label(
                f"now {now}; accepted range {fmt.watts(self.low)} – {fmt.watts(self.high)}; "
                "values outside it are clamped and audited",
                id="range",
                markup=False,
            )
            yield OrderedInput(placeholder="watts per GPU, e.g. 450", type="number", id="watts")
            yield Label("", id="note", markup=False)
            yield Label("", id="next-step", markup=False)
            with Horizontal(id="buttons"):
                yield ConfirmButton("Set cap", variant="warning", id="confirm", disabled=True)
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Focus the input."""
        if quitting(self):  # built as the dashboard quits: none of its widgets are there
            return
        self.give_first_focus(self.query_one("#watts", Input))

    def _watts(self) -> float | None:
        try:
            value = float(self.query_one("#watts", Input).value)
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None

    def next_step(self) -> str:
        """What confirming does (`cap demo01 at 450 W per GPU`)."""
        return f"cap {self.sample.node} at {self.query_one('#watts', Input).value.strip()} W per GPU"

    def on_input_changed(self, event: Input.Changed) -> None:
        """Say what the typed value will do (a changed value needs its first step again)."""
        event.stop()
        self.unready()
        self.query_one("#note", Label).update(input_note(event.value, self.low, self.high))
        self.query_one("#confirm", Button).disabled = self._watts() is None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the watts: the first step for a valid value (the confirm button gets focus); right behind it the second."""
        event.stop()
        if self._watts() is None:  # the note under the input already says why
            self.app.bell()
        elif self.enter_in_input():
            self.dismiss(self._watts())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Set (a click once armed; Enter once ready) or cancel."""
        event.stop()
        if event.button.id != "confirm":
            self.dismiss(None)
        elif self.confirmation_counts(clicked=not self.pressed_by_key(event.button)):
            self.dismiss(self._watts())
