"""The node table's lines as Rich segments: one header line and one line per node, drawn from `NodeRow`s.

The table widget asks only for the lines in view, so a refresh of 256 nodes x 8 GPUs draws ~40 lines, never 256.
Cells are built straight from (text, style) pieces (no Text layout pass), which keeps a line near 20 µs.
`NodeRowsRenderable` draws a whole table for tests and exports, with no App.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.gpu_bars import (
    LOST,
    MISSING,
    Bar,
    bar_glyph,
    bar_style,
    is_lost,
    level_style,
    power_bar,
    temperature_bar,
    temperature_level,
    utilization_bar,
)
from factoryctl.tui.renderables.palette import no_color, tone
from factoryctl.tui.view import SORT_KEYS, NodeRow

#: (key, width) of every column, in order; titles come from `SORT_KEYS` (every column sorts). The node's and the
#: rack's are their narrowest: they widen to their longest name (`widths_for`).
COLUMNS: tuple[tuple[str, int], ...] = (
    ("node", 6),
    ("state", 8),
    ("util", 13),
    ("power", 13),
    ("temp", 12),
    ("flags", 9),
    ("rack", 4),
)
PADDING = 1
#: Below this the node column keeps the Flags column in view and lets the Rack column scroll off instead.
NODE_WIDTH_WITH_RACK = 12
#: The columns that give way on a terminal too narrow for a whole line, first to last: each moves past the Flags
#: column (where the sideways scroll reaches it) until Node, State and Flags fit, as htop and nvitop drop theirs.
YIELDING_COLUMNS = ("rack", "power", "temp", "util")
#: The widest a rack's name widens its column.
RACK_MAX_WIDTH = 16
#: An XID this recent (seconds before the node's sample, by the agent's clock) flags its node `xid`.
XID_RECENT_S = 3600.0
#: The meaning of each state (renderables/palette.py gives its style, with colour or without).
STATE_TONES = {"up": "ok", "degraded": "warn", "down": "alarm"}

Piece = tuple[str, str]  # (text, style name)


@lru_cache(maxsize=64)
def style(name: str) -> Style:
    """Parsed style, cached (a row has ~30 pieces)."""
    return Style.parse(name) if name else Style()


def _bar(gpu: GpuSample, bar: Bar, plain: bool) -> Piece:
    if is_lost(gpu):
        return LOST, tone("alarm", plain)
    if bar is None:
        return MISSING, tone("secondary", plain)
    fraction, level = bar
    return bar_glyph(fraction, level), bar_style(level, plain)


#: States that say nothing of the node now (not answered yet; a late controller's old row): drawn in grey italics.
UNKNOWN_STATES = ("connecting", "stale")


def state_style(state: str, plain: bool | None = None) -> str:
    """The style of a node state's word: its colour, or its attributes under NO_COLOR (renderables/palette.py)."""
    if state in UNKNOWN_STATES:
        return f"italic {tone('secondary', plain)}".strip()  # the palette's grey: never bright black
    return tone(STATE_TONES[state], plain) if state in STATE_TONES else ""


def widths_for(rows: Sequence[NodeRow], available: int | None = None) -> tuple[tuple[str, int], ...]:
    """Column widths in display order: the node and rack columns as wide as their longest name, within `available`.

    On a terminal too narrow for every name, the node column takes the room left by the others (names are elided in
    the middle, `node_names`), never under `text.NAME_MIN_WIDTH`. When that room is short (under
    `NODE_WIDTH_WITH_RACK` with the Rack column, under `text.NAME_MIN_WIDTH` without it; shorter names need only their
    own width), the `YIELDING_COLUMNS` move one by one past the Flags column, so a node's state and flags stay in view (the flags are the alarm): the Rack
    column first, then Power, Temp and Util, all still reached by scrolling sideways.
    """
    rack = min(max([4, *(len(r.rack or "—") for r in rows)]), RACK_MAX_WIDTH)
    others = [(key, rack if key == "rack" else width) for key, width in COLUMNS if key != "node"]
    node = max([dict(COLUMNS)["node"], *(len(r.name) for r in rows)])  # `Node ▲` whole: `ws` cut it to `No ▲`
    moved: list[str] = []
    if available is not None:
        for key in YIELDING_COLUMNS:
            room = available - line_width([c for c in others if c[0] not in moved]) - 2 * PADDING
            if room >= min(node, NODE_WIDTH_WITH_RACK if key == "rack" else fmt.NAME_MIN_WIDTH):
                break
            moved.append(key)
        room = available - line_width([c for c in others if c[0] not in moved]) - 2 * PADDING
        node = min(node, max(room, fmt.NAME_MIN_WIDTH))
    widths = dict(others, node=node)
    order = [key for key, _ in COLUMNS if key not in moved] + [key for key, _ in COLUMNS if key in moved]
    return tuple((key, widths[key]) for key in order)


def node_names(rows: Sequence[NodeRow], width: int) -> dict[str, str]:
    """Each row's name as the node column shows it in `width` cells: what tells it from the others kept whole."""
    affixes = fmt.name_affixes([r.name for r in rows])
    return {r.name: fmt.elide_name(r.name, width, affixes[r.name]) for r in rows}


def recent_xid(sample: NodeSample) -> bool:
    """Whether a GPU of the node reported an XID in the `XID_RECENT_S` before its sample (a non-fatal one too)."""
    times = [when for gpu in sample.gpus for _, when in fmt.xid_events(gpu)]
    return any(when is None or sample.time - when <= XID_RECENT_S for when in times)  # no time: just seen


def flag_pieces(drained: bool, healthy: bool, plain: bool, xid: bool = False) -> list[Piece]:
    """`drained`, `unhealthy`, or both as `unhlth dr`: the alarm first, so the column (9 wide) never crops it.

    Unhealthy is one definition with the header's count: `NodeSample.healthy` (docs/dashboard.md). A healthy node
    with a recent XID (`recent_xid`) reads `xid` (`xid dr` when drained); an unhealthy one is flagged already.
    """
    if healthy:
        marks = [("xid", tone("alarm", plain))] if xid else []
        if drained:
            marks.append((" dr", tone("warn", plain)) if xid else ("drained", tone("warn", plain)))
        return marks
    if not drained:
        return [("unhealthy", tone("alarm", plain))]
    return [("unhlth", tone("alarm", plain)), (" dr", tone("warn", plain))]


def cell_pieces(row: NodeRow, plain: bool | None = None) -> dict[str, list[Piece]]:
    """Each column's content as (text, style) pieces; `plain`: without colour (NO_COLOR's styles, by default when set)."""
    sample = row.sample
    plain = no_color() if plain is None else plain  # read once per row: a row has ~30 styled pieces
    cells: dict[str, list[Piece]] = {
        "node": [(row.name, "bold")],
        "state": [(sample.state, state_style(sample.state, plain))],
        "rack": [(row.rack or "—", "")],
    }
    cells["flags"] = flag_pieces(row.drained, sample.healthy, plain, xid=recent_xid(sample))
    if sample.state == "down":
        cells["util"] = [(sample.error or "unreachable", tone("secondary", plain))]
        cells["power"] = []
        cells["temp"] = []
        return cells
    util = [_bar(g, utilization_bar(g), plain) for g in sample.gpus]
    power = [_bar(g, power_bar(g), plain) for g in sample.gpus]
    temp = [_bar(g, temperature_bar(g), plain) for g in sample.gpus]
    mean = row.mean_utilization_pct
    util.append((f"{mean:4.0f}%" if mean is not None else "    —", ""))
    power.append((f"{sample.power_w / 1000:5.1f}" if sample.power_w is not None else "    —", ""))
    hottest = sample.hottest_temperature_c
    if hottest is None:
        temp.append(("  —", ""))
    else:
        slowdown = min((g.temperature_slowdown_c for g in sample.gpus if g.temperature_slowdown_c), default=None)
        temp.append((f"{hottest:4.0f}", level_style(temperature_level(hottest, slowdown), plain)))
    if sample.state == "stale":  # old values: their heights still read, but no colour alarms or reassures
        util, power, temp = ([(text, tone("secondary", plain)) for text, _ in pieces] for pieces in (util, power, temp))
    cells["util"], cells["power"], cells["temp"] = util, power, temp
    return cells


def _fit(pieces: list[Piece], width: int, base: Style | None) -> list[Segment]:
    """Pad (or crop, with an ellipsis) pieces to `width` plus the cell padding on both sides."""
    out = [Segment(" " * PADDING, base)]
    used = 0
    for text, name in pieces:
        if used + len(text) > width:
            room = width - used
            if room > 0:
                out.append(Segment(text[: room - 1] + "…", _mix(base, name)))
                used = width
            break
        out.append(Segment(text, _mix(base, name)))
        used += len(text)
    out.append(Segment(" " * (width - used + PADDING), base))
    return out


def _mix(base: Style | None, name: str) -> Style:
    return base + style(name) if base else style(name)


def row_segments(
    row: NodeRow,
    columns: Sequence[tuple[str, int]],
    base: Style | None = None,
    shown_name: str | None = None,
    plain: bool | None = None,
) -> list[Segment]:
    """One node's line; `base` (e.g. the cursor's style) goes under every piece; `shown_name` from `node_names`.

    `plain` draws it with NO_COLOR's styles (the cursor's row: see widgets/node_table.py).
    """
    cells = cell_pieces(row, plain)
    if shown_name is not None:
        cells["node"] = [(shown_name, "bold")]
    segments: list[Segment] = []
    for key, width in columns:
        segments.extend(_fit(cells[key], width, base))
    return segments


def header_segments(
    columns: Sequence[tuple[str, int]], sort_column: str, reverse: bool, base: Style | None = None
) -> list[Segment]:
    """The header line, with ▲/▼ on the sort column (its title shortened to make room: `Ra ▲` in the 4-wide Rack)."""
    segments: list[Segment] = []
    for key, width in columns:
        title = SORT_KEYS[key][0]
        pieces: list[Piece] = [(title, "bold" if key == sort_column else "")]
        if key == sort_column:
            arrow = " ▼" if reverse else " ▲"
            pieces = [(title[: width - len(arrow)], "bold"), (arrow, "bold")]
        segments.extend(_fit(pieces, width, base))
    return segments


def line_width(columns: Sequence[tuple[str, int]]) -> int:
    """Width of a whole line."""
    return sum(width + 2 * PADDING for _, width in columns)


def column_at(columns: Sequence[tuple[str, int]], x: int) -> str | None:
    """The column under horizontal offset `x` of a line."""
    left = 0
    for key, width in columns:
        left += width + 2 * PADDING
        if x < left:
            return key
    return None


class NodeRowsRenderable:
    """A whole node table (header and every row) for tests and exports."""

    def __init__(self, rows: Sequence[NodeRow], sort_column: str = "node", reverse: bool = False) -> None:
        self.rows = rows
        self.sort_column = sort_column
        self.reverse = reverse

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Header, then one line per row, as the table draws them `options.max_width` wide."""
        columns = widths_for(self.rows, options.max_width)
        names = node_names(self.rows, dict(columns)["node"])
        yield from header_segments(columns, self.sort_column, self.reverse)
        yield Segment.line()
        for row in self.rows:
            yield from row_segments(row, columns, shown_name=names[row.name])
            yield Segment.line()
