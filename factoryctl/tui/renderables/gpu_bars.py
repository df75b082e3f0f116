"""Per-GPU mini bars: one block character per GPU whose height is the value and whose colour is its threshold.

Eight GPUs fit in eight cells, so a 256-node table still shows every GPU's utilization, power against its cap and
temperature against its slowdown point at a glance. Height carries the value, so the bars still read with NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from factoryctl.model.telemetry import GpuSample

BLOCKS = " ▁▂▃▄▅▆▇█"
MISSING = "·"

#: Style names by level; ANSI names so both dark and light terminal palettes render them legibly.
LEVEL_STYLES = {"idle": "bright_black", "ok": "green", "warn": "yellow", "hot": "bold red"}

#: Temperatures below this draw as an empty bar, at `slowdown + 5` as a full one.
TEMPERATURE_FLOOR_C = 25.0
DEFAULT_SLOWDOWN_C = 87.0


def block(fraction: float) -> str:
    """The block character for a fraction in [0, 1]; never blank, so an idle GPU still shows as a low bar."""
    fraction = min(max(fraction, 0.0), 1.0)
    return BLOCKS[max(1, round(fraction * 8))]


def utilization_level(pct: float) -> str:
    """`idle` below 5%, else `ok`."""
    return "idle" if pct < 5 else "ok"


def power_level(power_w: float, limit_w: float | None) -> str:
    """`ok` below 80% of the cap, `warn` below 95%, `hot` at the cap."""
    if not limit_w:
        return "ok"
    fraction = power_w / limit_w
    return "ok" if fraction < 0.8 else "warn" if fraction < 0.95 else "hot"


def temperature_level(temperature_c: float, slowdown_c: float | None) -> str:
    """`ok` more than 15 °C below slowdown, `warn` within 15 °C, `hot` within 5 °C or above."""
    slowdown = slowdown_c or DEFAULT_SLOWDOWN_C
    if temperature_c >= slowdown - 5:
        return "hot"
    return "warn" if temperature_c >= slowdown - 15 else "ok"


def _bars(cells: Sequence[tuple[float, str] | None]) -> Text:
    text = Text(no_wrap=True, overflow="crop")
    for cell in cells:
        if cell is None:
            text.append(MISSING, style="bright_black")
        else:
            fraction, level = cell
            text.append(block(fraction), style=LEVEL_STYLES[level])
    return text


def utilization_bars(gpus: Sequence[GpuSample]) -> Text:
    """One bar per GPU: utilization."""
    return _bars(
        [
            None if g.utilization_pct is None else (g.utilization_pct / 100, utilization_level(g.utilization_pct))
            for g in gpus
        ]
    )


def power_bars(gpus: Sequence[GpuSample]) -> Text:
    """One bar per GPU: power draw as a fraction of the enforced limit (of the max limit when none is known)."""
    cells: list[tuple[float, str] | None] = []
    for g in gpus:
        scale = g.power_limit_w or g.power_limit_max_w
        if g.power_w is None or not scale:
            cells.append(None)
        else:
            cells.append((g.power_w / scale, power_level(g.power_w, g.power_limit_w)))
    return _bars(cells)


def temperature_bars(gpus: Sequence[GpuSample]) -> Text:
    """One bar per GPU: temperature between 25 °C and 5 °C past the slowdown point."""
    cells: list[tuple[float, str] | None] = []
    for g in gpus:
        if g.temperature_c is None:
            cells.append(None)
            continue
        top = (g.temperature_slowdown_c or DEFAULT_SLOWDOWN_C) + 5
        fraction = (g.temperature_c - TEMPERATURE_FLOOR_C) / (top - TEMPERATURE_FLOOR_C)
        cells.append((fraction, temperature_level(g.temperature_c, g.temperature_slowdown_c)))
    return _bars(cells)
