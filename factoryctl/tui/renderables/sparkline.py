"""A history graph in block characters that fills whatever width it is given (one or more lines tall).

Values are bucketed to the width (each column shows its bucket's maximum, so a short spike is never lost); `None`
points are gaps. Used for the factory's power over the last hour and each GPU's recent history.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

from factoryctl.model.sparkline import BLOCKS, column_maxima


class Sparkline:
    """Render `values` as a `height`-line block graph scaled between `minimum` and `maximum`."""

    def __init__(
        self,
        values: Sequence[float | None],
        height: int = 1,
        minimum: float | None = None,
        maximum: float | None = None,
        style: str = "cyan",
        ceiling: float | None = None,
        ceiling_style: str = "red",
    ) -> None:
        self.values = values
        self.height = max(1, height)
        self.minimum = minimum
        self.maximum = maximum
        self.style = style
        self.ceiling = ceiling  # e.g. the facility budget: columns above it use `ceiling_style`
        self.ceiling_style = ceiling_style

    def _range(self) -> tuple[float, float]:
        present = [v for v in self.values if v is not None]
        low = self.minimum if self.minimum is not None else (min(present) if present else 0.0)
        high = self.maximum if self.maximum is not None else (max(present) if present else 1.0)
        if high <= low:
            high = low + 1.0
        return low, high

    def rows(self, width: int) -> list[list[tuple[str, str]]]:
        """The graph as `height` rows (top first) of (character, style) cells."""
        low, high = self._range()
        columns = column_maxima(self.values, width)
        levels = self.height * 8
        rows: list[list[tuple[str, str]]] = [[] for _ in range(self.height)]
        for value in columns:
            style = self.style
            if value is not None and self.ceiling is not None and value > self.ceiling:
                style = self.ceiling_style
            filled = -1 if value is None else max(1, round((min(max(value, low), high) - low) / (high - low) * levels))
            for line in range(self.height):
                floor = (self.height - 1 - line) * 8
                if filled < 0:
                    cell = "·" if line == self.height - 1 else " "
                    rows[line].append((cell, "bright_black"))
                else:
                    rows[line].append((BLOCKS[min(8, max(0, filled - floor))], style))
        return rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Draw the graph at the console's width."""
        for row in self.rows(options.max_width):
            for char, style in row:
                yield Segment(char, Style.parse(style))
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        """Any width from 1 column to all of it."""
        return Measurement(1, options.max_width)
