"""The node table: one row per node with per-GPU mini bars, sortable by any column, virtualized.

A Line API widget: it keeps the frozen rows and draws only the lines in view (renderables/node_rows.py), so a
refresh of 256 nodes x 8 GPUs costs the ~40 visible lines, not 256 rows of cells. The header stays on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from factoryctl.tui.renderables.node_rows import (
    cell_pieces,
    column_at,
    header_segments,
    line_width,
    node_names,
    row_segments,
    widths_for,
)
from factoryctl.tui.view import SORT_ORDER, NodeRow, sort_rows

#: Columns that sort descending first (the biggest number is the interesting one).
DESCENDING_FIRST = frozenset({"util", "power", "temp"})


class NodeTable(ScrollView, can_focus=True):
    """Nodes of the factory, sortable by any column (click a header, or `s` / `S`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "next_sort", "Sort", tooltip="sort by the next column (or click a column's header)"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="reverse the sort order"),
        Binding("home,g", "first", "Top", show=False, tooltip="first node"),
        Binding("end,G", "last", "Bottom", show=False, tooltip="last node"),
        Binding("enter", "select", "Open", show=False),
        Binding("up", "cursor_up", show=False),
        Binding("down", "cursor_down", show=False),
        Binding("pageup", "page_up_rows", show=False),
        Binding("pagedown", "page_down_rows", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"node-table--header", "node-table--cursor"}

    DEFAULT_CSS = """
    NodeTable {
        background: $surface;
        & > .node-table--header { background: $panel; color: $foreground; }
        & > .node-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        /* White on a blue 3:1 from the dark and the light themes' tables: 5.2:1 (the theme's #0178d4 read 3.8:1). */
        &:focus > .node-table--cursor {
            background: #1f6fb5;
            color: #ffffff;
            text-style: $block-cursor-text-style;
        }
        &:ansi:focus > .node-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
    }
    """

    cursor_row: reactive[int] = reactive(0)

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
        super().__init__(id=id)
        self.sort_column = "node"
        self.sort_reverse = False
        self._source: list[NodeRow] = []
        self._rows: list[NodeRow] = []
        self._columns = widths_for([])
        self._names: dict[str, str] = {}  # each node's name as its column shows it (elided in the middle)

    # ------------------------------------------------------------------ data

    @property
    def rows_shown(self) -> list[str]:
        """Node names in display order."""
        return [r.name for r in self._rows]

    @property
    def row_count(self) -> int:
        """Rows shown."""
        return len(self._rows)

    @property
    def selected_node(self) -> str | None:
        """The node under the cursor."""
        return self._rows[self.cursor_row].name if 0 <= self.cursor_row < len(self._rows) else None

    def cell_text(self, node: str, column: str) -> str:
        """The plain text of one cell (for tests and screen readers)."""
        for row in self._rows:
            if row.name == node:
                return "".join(text for text, _ in cell_pieces(row)[column])
        raise KeyError(node)

    def show_rows(self, rows: Sequence[NodeRow], *, refiltered: bool = False) -> None:
        """Show these rows (already filtered), sorted by the current sort column; the cursor stays on its node.

        When its node is no longer shown the cursor goes to the first row after a new filter (`refiltered`: the
        operator looks for its matches), else keeps its row (a node gone between refreshes: its neighbour).
        """
        current = self.selected_node
        self._source = list(rows)
        self._rows = sort_rows(self._source, self.sort_column, self.sort_reverse)
        self._lay_out()
        names = self.rows_shown
        if current in names:
            index = names.index(current)
        else:
            index = 0 if refiltered else min(self.cursor_row, max(0, len(names) - 1))
        if index != self.cursor_row:
            self.cursor_row = index
        elif (now := self.selected_node) is not None and now != current:  # another node on the same row
            self.post_message(self.NodeHighlighted(now))
        if refiltered:  # a moved cursor is shown by `watch_cursor_row`; a refresh keeps a wheel's scroll as it is
            self._show_cursor()
        self.refresh()

    # ------------------------------------------------------------------ drawing

    def _lay_out(self) -> None:
        """Column widths for the rows and the width in view: long names get the room the terminal has."""
        available = self.scrollable_content_region.width or None  # 0 before the first layout: no limit yet
        self._columns = widths_for(self._rows, available)
        self._names = node_names(self._rows, dict(self._columns)["node"])
        self.virtual_size = Size(line_width(self._columns), len(self._rows) + 1)

    def on_resize(self, event: events.Resize) -> None:
        """A wider or narrower terminal: the node column takes the room there is; the cursor's row stays in view."""
        self._lay_out()
        self._show_cursor()
        self.call_after_refresh(self._show_cursor)  # once the scrollbars have come or gone with the new size
        self.refresh()

    def watch_show_vertical_scrollbar(self) -> None:
        """The scrollbar came (more rows than fit) or went: it takes or gives back the columns of its width."""
        self._lay_out()
        self._show_cursor()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """The header (y = 0) or the row at `y` under the current scroll offset."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            header = base + self.get_component_rich_style("node-table--header")
            segments = header_segments(self._columns, self.sort_column, self.sort_reverse, header)
            return Strip(segments, line_width(self._columns)).crop_extend(scroll_x, scroll_x + width, header)
        index = y - 1 + scroll_y
        if index >= len(self._rows):
            return Strip.blank(width, base)
        cursor = index == self.cursor_row
        style = base + self.get_component_rich_style("node-table--cursor") if cursor else base
        row = self._rows[index]
        # the cursor's row in NO_COLOR's styles: no value colour reads on a background that stands out from the
        # table's (an alarm is reverse video there, a warning bold), and its text reads at 5:1 (see DEFAULT_CSS)
        segments = row_segments(row, self._columns, style, self._names.get(row.name), plain=True if cursor else None)
        return Strip(segments, line_width(self._columns)).crop_extend(scroll_x, scroll_x + width, style)

    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _show_cursor(self) -> None:
        """Scroll just enough to bring the cursor's row into view (`d` and `p` act on the node it shows)."""
        top, row = round(self.scroll_y), self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + self._visible_rows():
            self.scroll_to(y=row - self._visible_rows() + 1, animate=False)

    def watch_cursor_row(self, old: int, new: int) -> None:
        """Keep the cursor in view and tell the screen."""
        self._show_cursor()
        self.refresh()
        node = self.selected_node
        if node is not None:
            self.post_message(self.NodeHighlighted(node))

    def _move(self, row: int) -> None:
        if self._rows:
            self.cursor_row = min(max(row, 0), len(self._rows) - 1)

    def move_cursor(self, row: int) -> None:
        """Put the cursor on row `row` (clamped)."""
        self._move(row)

    # ------------------------------------------------------------------ keys and mouse

    def action_cursor_up(self) -> None:
        """Up one row."""
        self._move(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        """Down one row."""
        self._move(self.cursor_row + 1)

    def action_page_up_rows(self) -> None:
        """Up one page."""
        self._move(self.cursor_row - self._visible_rows())

    def action_page_down_rows(self) -> None:
        """Down one page."""
        self._move(self.cursor_row + self._visible_rows())

    def action_first(self) -> None:
        """First node."""
        self._move(0)

    def action_last(self) -> None:
        """Last node."""
        self._move(len(self._rows) - 1)

    def action_select(self) -> None:
        """Open the node under the cursor."""
        node = self.selected_node
        if node is not None:
            self.post_message(self.NodeSelected(node))

    def on_click(self, event: events.Click) -> None:
        """A header sorts by its column; a row moves the cursor there and opens the node."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = column_at(self._columns, offset.x + round(self.scroll_x))
            if column is not None:
                self.sort_by(column)
            return
        index = offset.y - 1 + round(self.scroll_y)
        if 0 <= index < len(self._rows):
            self.cursor_row = index
            self.action_select()

    # ------------------------------------------------------------------ sorting

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column`; choosing the current column again flips the direction."""
        if reverse is None:
            reverse = (not self.sort_reverse) if column == self.sort_column else column in DESCENDING_FIRST
        self.sort_column = column
        self.sort_reverse = reverse
        self.show_rows(self._source)
        self.post_message(self.SortChanged(column, reverse))

    def action_next_sort(self) -> None:
        """Sort by the next column."""
        index = SORT_ORDER.index(self.sort_column)
        self.sort_by(SORT_ORDER[(index + 1) % len(SORT_ORDER)])

    def action_reverse_sort(self) -> None:
        """Flip the sort direction."""
        self.sort_by(self.sort_column, not self.sort_reverse)
