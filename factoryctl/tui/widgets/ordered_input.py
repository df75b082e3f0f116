"""A text input that applies every key in the order it came, even in a burst (backspaces, then new text).

Textual's `Input` types a printable key at once, in its own handler, but runs its editing keys (Backspace, Delete,
the arrows, Enter) through the bindings, only once the key has bubbled up to the screen and the app. Keys that come
faster than that round trip would be applied out of order (letters overtaking backspaces). This input runs its own
bindings as soon as it receives the key, so every key acts in the order it was pressed. A key it has no binding for
bubbles up as before.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """An `Input` whose editing keys act in order with the typed ones (see the module's docstring)."""

    async def _on_key(self, event: events.Key) -> None:
        """Run this input's own binding for the key now; else let `Input` type it (or the key bubble up)."""
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if binding.priority:  # the app ran priority bindings before the key reached this input
                continue
            if await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()  # Input's own handler (printable keys) has nothing more to do
                return
