"""Ask for a node's new GPU power cap, show the valid range and what the value will be clamped to, then confirm.

Esc cancels; `q` cancels too once the focus is on a button (in the input it is a key that types nothing).
"""

from __future__ import annotations

import math
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui import text as fmt


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
    return f"every GPU will be capped at {watts:g} W"


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


class PowerCapScreen(ModalScreen[float | None]):
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
        with Vertical(id="dialog"):
            yield Label(f"Set the power cap of every GPU on {s.node} ({len(s.gpus)} GPUs)", id="question")
            yield Label(
                f"now {now}; accepted range {fmt.watts(self.low)} – {fmt.watts(self.high)}; "
                "values outside it are clamped and audited",
                id="range",
            )
            yield Input(placeholder="watts per GPU, e.g. 450", type="number", id="watts")
            yield Label("", id="note")
            with Horizontal(id="buttons"):
                yield Button("Set cap", variant="warning", id="confirm", disabled=True)
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Focus the input."""
        self.query_one("#watts", Input).focus()

    def _watts(self) -> float | None:
        try:
            value = float(self.query_one("#watts", Input).value)
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None

    def on_input_changed(self, event: Input.Changed) -> None:
        """Say what the typed value will do."""
        event.stop()
        self.query_one("#note", Label).update(input_note(event.value, self.low, self.high))
        self.query_one("#confirm", Button).disabled = self._watts() is None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter confirms a valid value."""
        event.stop()
        watts = self._watts()
        if watts is not None:
            self.dismiss(watts)
        else:  # the note under the input already says why
            self.app.bell()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Set or cancel."""
        event.stop()
        self.dismiss(self._watts() if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        """Esc: change nothing."""
        self.dismiss(None)
