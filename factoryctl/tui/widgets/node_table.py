"""The node table: one row per node with per-GPU mini bars, sortable by any column.

A `DataTable` draws only the rows in view, so 256 nodes x 8 GPUs stays smooth; a refresh that keeps the row order
only swaps cell values (no re-measuring), and a new order rebuilds the rows once.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from factoryctl.tui.renderables.gpu_bars import (
    LEVEL_STYLES,
    power_bars,
    temperature_bars,
    temperature_level,
    utilization_bars,
)
from factoryctl.tui.view import SORT_KEYS, SORT_ORDER, NodeRow, sort_rows

STATE_STYLES = {"up": "green", "degraded": "yellow", "down": "bold red"}


def _cells(row: NodeRow) -> dict[str, Text]:
    sample = row.sample
    gpus = sample.gpus
    util = utilization_bars(gpus)
    mean = row.mean_utilization_pct
    util.append(f"{mean:4.0f}%" if mean is not None else "    —")
    power = power_bars(gpus)
    power.append(f"{sample.power_w / 1000:5.1f}" if sample.power_w is not None else "    —")
    temp = temperature_bars(gpus)
    hottest = sample.hottest_temperature_c
    if hottest is None:
        temp.append("  —")
    else:
        slowdown = min((g.temperature_slowdown_c for g in gpus if g.temperature_slowdown_c), default=None)
        temp.append(f"{hottest:4.0f}", style=LEVEL_STYLES[temperature_level(hottest, slowdown)])
    if sample.state == "down":
        util = Text(f"{sample.error or 'unreachable'}", style="bright_black", no_wrap=True, overflow="ellipsis")
        power = Text("")
        temp = Text("")
    flags = Text(no_wrap=True)
    if row.drained:
        flags.append("drained", style="yellow")
    if not sample.healthy and sample.state != "down":
        flags.append(" unhlth" if row.drained else "unhealthy", style="bold red")
    return {
        "node": Text(row.name, style="bold"),
        "state": Text(sample.state, style=STATE_STYLES.get(sample.state, "")),
        "util": util,
        "power": power,
        "temp": temp,
        "flags": flags,
        "rack": Text(row.rack or "—"),
    }


class NodeTable(DataTable[Text]):
    """Nodes of the factory, sortable by any column (click a header, or `s` / `S`)."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("s", "next_sort", "Sort", tooltip="sort by the next column (or click a column's header)"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="reverse the sort order"),
        Binding("home,g", "scroll_top", "Top", show=False, tooltip="first node"),
        Binding("end,G", "scroll_bottom", "Bottom", show=False, tooltip="last node"),
    ]

    class NodeSelected(Message):
        """Enter (or a click) on a node's row."""

        def __init__(self, node: str) -> None:
            super().__init__()
            self.node = node

    class NodeHighlighted(Message):
        """The cursor moved to a node."""

        def __init__(self, node: str) -> None:
            super().__init__()
            self.node = node

    class SortChanged(Message):
        """The sort column or direction changed."""

        def __init__(self, column: str, reverse: bool) -> None:
            super().__init__()
            self.column = column
            self.reverse = reverse

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._rows: list[NodeRow] = []
        self._order: list[str] = []
        self._node_width = 6
        self.sort_column = "node"
        self.sort_reverse = False

    def on_mount(self) -> None:
        """Create the columns."""
        self._add_columns()

    def _add_columns(self) -> None:
        widths = {"node": self._node_width, "state": 8, "util": 13, "power": 13, "temp": 12, "flags": 9, "rack": 4}
        for key in SORT_ORDER:
            self.add_column(self._label(key), width=widths[key], key=key)

    def _label(self, key: str) -> Text:
        title = SORT_KEYS[key][0]
        if key == self.sort_column:
            return Text.assemble((title, "bold"), (" ▼" if self.sort_reverse else " ▲", "bold"))
        return Text(title)

    @property
    def rows_shown(self) -> list[str]:
        """Node names in display order."""
        return list(self._order)

    @property
    def selected_node(self) -> str | None:
        """The node under the cursor."""
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def show_rows(self, rows: Sequence[NodeRow]) -> None:
        """Show these rows (already filtered), sorted by the current sort column."""
        self._rows = list(rows)
        ordered = sort_rows(self._rows, self.sort_column, self.sort_reverse)
        order = [r.name for r in ordered]
        longest = max((len(name) for name in order), default=4)
        if longest > self._node_width:
            self._node_width = min(longest, 24)
            self.clear(columns=True)
            self._add_columns()
            self._order = []
        if order == self._order:
            for row in ordered:
                for column, cell in _cells(row).items():
                    self.update_cell(row.name, column, cell)
            return
        current = self.selected_node
        self.clear()
        for row in ordered:
            cells = _cells(row)
            self.add_row(*(cells[key] for key in SORT_ORDER), key=row.name)
        self._order = order
        if current in order:
            self.move_cursor(row=order.index(current), animate=False)

    def _resort(self) -> None:
        for key in SORT_ORDER:
            self.columns[key].label = self._label(key)  # type: ignore[index]
        self.show_rows(self._rows)
        self.refresh()

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column`; choosing the current column again flips the direction."""
        if reverse is None:
            reverse = (not self.sort_reverse) if column == self.sort_column else column in ("util", "power", "temp")
        self.sort_column = column
        self.sort_reverse = reverse
        self._resort()
        self.post_message(self.SortChanged(column, reverse))

    def action_next_sort(self) -> None:
        """Sort by the next column."""
        index = SORT_ORDER.index(self.sort_column)
        self.sort_by(SORT_ORDER[(index + 1) % len(SORT_ORDER)])

    def action_reverse_sort(self) -> None:
        """Flip the sort direction."""
        self.sort_by(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Click on a header: sort by it."""
        event.stop()
        self.sort_by(str(event.column_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: open the node."""
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.NodeSelected(event.row_key.value))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Cursor moved."""
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.NodeHighlighted(event.row_key.value))
