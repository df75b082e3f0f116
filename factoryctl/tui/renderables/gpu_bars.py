"""Per-GPU mini bars: one block character per GPU whose height is the value and whose colour is its threshold.

Eight GPUs fit in eight cells, so a 256-node table still shows every GPU's utilization, power against its cap and
temperature against its slowdown point at a glance. Height carries the value, so the bars still read with NO_COLOR.
A bar in its warning band, or at its limit, is a shaded cell instead (`bar_glyph`): its colour alone (yellow, red
against green) is one colour to a red-green colour-blind reader and none under NO_COLOR, and bold does nothing to a
block. Its exact height matters little there (the bands start near 6/8 of full; the number is in the GPU table):
the band is the news.
This module holds the maths (each bar's fraction and level, the thresholds, the block character); the node table
(node_rows.py) draws them, and the GPU table and detail screens colour their numbers by the same levels.
"""

from __future__ import annotations

from factoryctl.model.sparkline import BLOCKS
from factoryctl.model.telemetry import GpuSample
from factoryctl.tui.renderables.palette import COLOUR_STYLES, bar_tone, tone

#: A value the driver does not report (never a made-up 0).
MISSING = "·"
#: A GPU that fell off the bus, in every bar of its node (an alarm: never the `MISSING` of "not reported").
LOST = "x"

#: A bar in its warning band, and one at its limit (the power graph's shade above the budget): a full cell shaded,
#: never one of the solid blocks an ok bar is drawn with.
WARN_BAR = "▒"
HOT_BAR = "▓"

#: Style names by level in ANSI names (a 16-colour terminal, a renderable drawn without the App); the App's theme
#: picks its own colours for them (renderables/palette.py); see `level_style`.
LEVEL_STYLES = {level: COLOUR_STYLES[level] for level in ("idle", "ok", "warn", "hot")}

#: Temperatures below this draw as an empty bar, at `slowdown + 5` as a full one.
TEMPERATURE_FLOOR_C = 25.0
DEFAULT_SLOWDOWN_C = 87.0

#: A bar's height (a fraction of full, not yet clamped) and its level, a key of `LEVEL_STYLES`; None when unknown.
Bar = tuple[float, str] | None


def level_style(level: str, plain: bool | None = None) -> str:
    """The style of a number at `level`: its colour, or bold / bold reverse under NO_COLOR (renderables/palette.py)."""
    return tone(level, plain)


def bar_style(level: str, plain: bool | None = None) -> str:
    """The style of a bar at `level`: its colour, or the text's own (bold when hot) under NO_COLOR."""
    return bar_tone(level, plain)


def block(fraction: float) -> str:
    """The block character for a fraction (clamped to [0, 1]); never blank, so an idle GPU still shows a low bar."""
    fraction = min(max(fraction, 0.0), 1.0)
    return BLOCKS[max(1, round(fraction * 8))]


def bar_glyph(fraction: float, level: str) -> str:
    """A bar's character: `block(fraction)`, or a shade of its own in the warning band and at the limit."""
    return HOT_BAR if level == "hot" else WARN_BAR if level == "warn" else block(fraction)


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


def is_lost(gpu: GpuSample) -> bool:
    """The agent reported the GPU as fallen off the bus (every field null with the reason `gpu_lost`)."""
    return "gpu_lost" in gpu.null_reasons.values()


def utilization_bar(gpu: GpuSample) -> Bar:
    """The GPU's utilization bar."""
    pct = gpu.utilization_pct
    return None if pct is None else (pct / 100, utilization_level(pct))


def power_bar(gpu: GpuSample) -> Bar:
    """Power draw as a fraction of the enforced limit (of the max limit when none is known)."""
    scale = gpu.power_limit_w or gpu.power_limit_max_w
    if gpu.power_w is None or not scale:
        return None
    return gpu.power_w / scale, power_level(gpu.power_w, gpu.power_limit_w)


def temperature_bar(gpu: GpuSample) -> Bar:
    """Temperature between `TEMPERATURE_FLOOR_C` and 5 °C past the slowdown point."""
    if gpu.temperature_c is None:
        return None
    top = (gpu.temperature_slowdown_c or DEFAULT_SLOWDOWN_C) + 5
    fraction = (gpu.temperature_c - TEMPERATURE_FLOOR_C) / (top - TEMPERATURE_FLOOR_C)
    return fraction, temperature_level(gpu.temperature_c, gpu.temperature_slowdown_c)
