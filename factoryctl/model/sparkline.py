"""Sparklines without a screen: the block ramps and the bucketing of a series to a width, shared by CLI and TUI.

`telemetry history`'s TREND column and the dashboard's graphs draw trends in the same eight block heights; this
module holds the ramps and the two ways a series is shrunk to fit, and each caller picks its style:

- `column_maxima`: exactly `width` columns, right-aligned (the newest value is the last column), `None` for a gap
  or a column before the first value; each column is its values' maximum, so a short spike is never lost (a graph).
- `sample_means`: about `width` chunks, each the mean of about the same number of samples (`weights` says how many
  each value stands for: a rolled-up minute of 60 samples takes as much of the line as 60 raw points), no gaps (a
  summary's trend).

Pure: no terminal, no Rich; the caller decides whether its output takes block characters (`ramp_line(..., ascii)`).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Nine heights, blank (0) to full (8): `BLOCKS[n]` is a cell filled n eighths.
BLOCKS = " ▁▂▃▄▅▆▇█"
#: The eight visible heights, lowest first: a trend is never blank where it has a value.
UNICODE_RAMP = BLOCKS[1:]
#: The same eight heights for an output that cannot write block characters (an ASCII or latin-1 locale).
ASCII_RAMP = "_.-:=+*#"


def column_maxima(values: Sequence[float | None], width: int) -> list[float | None]:
    """`values` resampled to `width` columns (each its values' maximum), right-aligned; `None` where none is present."""
    if width <= 0:
        return []
    if len(values) <= width:
        return [None] * (width - len(values)) + list(values)
    out: list[float | None] = []
    for column in range(width):
        start = column * len(values) // width
        end = max(start + 1, (column + 1) * len(values) // width)
        present = [v for v in values[start:end] if v is not None]
        out.append(max(present) if present else None)
    return out


def sample_means(values: Sequence[float], width: int, weights: Sequence[int] | None = None) -> list[float]:
    """`values` in chunks of about `sum(weights) / width` samples each, each chunk its weighted mean, oldest first.

    A chunk closes as soon as it holds its share of samples, so there are at most about `width` of them (fewer when a
    value stands for more than a share); `weights` defaults to one sample per value.
    """
    counts = list(weights) if weights is not None else [1] * len(values)
    per_chunk = sum(counts) / width
    means: list[float] = []
    total = taken = 0.0
    for value, count in zip(values, counts, strict=True):
        total, taken = total + value * count, taken + count
        if taken >= per_chunk:
            means.append(total / taken)
            total = taken = 0.0
    if taken:
        means.append(total / taken)
    return means


def ramp_line(levels: Sequence[float], ascii_only: bool = False) -> str:
    """`levels` as one character each, scaled from their own minimum (lowest step) to their maximum (highest step).

    All-equal levels draw at the lowest step. `ascii_only` draws with `ASCII_RAMP` instead of block characters.
    """
    if not levels:
        return ""
    ramp = ASCII_RAMP if ascii_only else UNICODE_RAMP
    low, high = min(levels), max(levels)
    span = (high - low) or 1.0
    return "".join(ramp[min(len(ramp) - 1, int((v - low) / span * len(ramp)))] for v in levels)
