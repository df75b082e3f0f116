"""A history graph in block characters that fills whatever width it is given (one or more lines tall).

Values are bucketed to the width (each column shows its bucket's maximum, so a short spike is never lost); `None`
points are gaps. Used for the factory's power over the last hour and each GPU's recent history.

Colours come from the palette (renderables/palette.py), so they follow the theme and NO_COLOR. A ceiling (the
facility budget) is drawn as a dashed line at its height in the columns below it, and a column above it is shaded
(`▓`) where it is full, so above the budget shows by shape as well as by colour (red-green colour blindness,
NO_COLOR).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

from factoryctl.model.sparkline import BLOCKS, column_maxima
from factoryctl.tui.renderables.palette import bar_tone, tone

#: The ceiling's line, in the cells a column below it leaves empty.
CEILING_MARK = "╌"
#: A full cell of a column above the ceiling (a shade: the column's height still reads).
OVER_FULL = "▓"


class Sparkline:
    """Render `values` as a `height`-line block graph scaled between `minimum` and `maximum`."""

    def __init__(
        self,
        values: Sequence[float | None],
        height: int = 1,
        minimum: float | None = None,
        maximum: float | None = None,
        style: str | None = None,
        ceiling: float | None = None,
        ceiling_style: str | None = None,
    ) -> None:
        self.values = values
        self.height = max(1, height)
        self.minimum = minimum
        self.maximum = maximum
        self.style = tone("graph") if style is None else style
        self.ceiling = ceiling  # e.g. the facility budget: columns above it use `ceiling_style`
        self.ceiling_style = bar_tone("over") if ceiling_style is None else ceiling_style
        self.mark_style = tone("secondary")

    def _range(self) -> tuple[float, float]:
        present = [v for v in self.values if v is not None]
        low = self.minimum if self.minimum is not None else (min(present) if present else 0.0)
        high = self.maximum if self.maximum is not None else (max(present) if present else 1.0)
        if high <= low:
            high = low + 1.0
        return low, high

    def _ceiling_line(self, low: float, high: float) -> int | None:
        """The row (top first) the ceiling falls in, when it is inside the graph's range."""
        if self.ceiling is None or not low <= self.ceiling <= high:
            return None
        level = (self.ceiling - low) / (high - low) * self.height * 8
        return self.height - 1 - min(self.height - 1, max(0, int((level - 1e-9) // 8)))

    def rows(self, width: int) -> list[list[tuple[str, str]]]:
        """The graph as `height` rows (top first) of (character, style) cells."""
        low, high = self._range()
        mark_line = self._ceiling_line(low, high)
        columns = column_maxima(self.values, width)
        levels = self.height * 8
        rows: list[list[tuple[str, str]]] = [[] for _ in range(self.height)]
        for value in columns:
            over = value is not None and self.ceiling is not None and value > self.ceiling
            style = self.ceiling_style if over else self.style
            full = OVER_FULL if over else BLOCKS[8]
            filled = -1 if value is None else max(1, round((min(max(value, low), high) - low) / (high - low) * levels))
            for line in range(self.height):
                floor = (self.height - 1 - line) * 8
                if filled < 0:
                    cell = "·" if line == self.height - 1 else " "
                    rows[line].append((cell, self.mark_style))
                elif filled <= floor and line == mark_line:
                    rows[line].append((CEILING_MARK, self.mark_style))
                else:
                    height = min(8, max(0, filled - floor))
                    rows[line].append((full if height == 8 else BLOCKS[height], style))
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
