"""The factory at a glance: header, power graph, node table, jobs and events; Enter opens a node."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Footer

from factoryctl.live.services import FactorySnapshot
from factoryctl.tui.screens.lifecycle import quitting
from factoryctl.tui.screens.node_actions import NodeActionsScreen
from factoryctl.tui.view import SORT_KEYS, filter_nodes, node_rows
from factoryctl.tui.widgets.events_panel import EventsPanel
from factoryctl.tui.widgets.factory_header import FactoryHeader
from factoryctl.tui.widgets.filter_bar import FilterBar
from factoryctl.tui.widgets.jobs_panel import JobsPanel
from factoryctl.tui.widgets.node_table import NodeTable
from factoryctl.tui.widgets.power_history import PowerHistory

#: Below this many lines the jobs and events panels fold away so the node table keeps its rows (80x24 works).
PANELS_MIN_HEIGHT = 34
#: The panels' height at the least when the terminal has the room (borders included: 7 lines of events).
PANELS_MIN_LINES = 9
#: The panels' height at the very least, on a short terminal where the operator asked for them (3 lines of events).
PANELS_SQUEEZED_LINES = 5
#: The part of the room under the power graph the panels get at the least on a tall terminal, whatever the table needs.
PANELS_MIN_SHARE = 1 / 3
#: The node rows the table keeps in view (every row, when fewer) whatever the panels want: the panels give way first,
#: then the power graph (at 40x10 it stayed and no node row showed).
TABLE_MIN_ROWS = 5


#: The power graph's height (its CSS), should its style not say it in lines.
POWER_GRAPH_LINES = 4


def panels_lines(room: int, table_needs: int, table_least: int) -> int:
    """The panels' height: what the node table does not need, at least a third of it and `PANELS_MIN_LINES`.

    Never so much that the table is left under `table_least`, and 0 (no panels) when that leaves them fewer than
    `PANELS_SQUEEZED_LINES`: the panels give way first. `room` is what the table and the panels share (the terminal
    less the header, the graph and the footer); `table_needs` is the table's height with every row in view,
    `table_least` with `TABLE_MIN_ROWS` rows (or every row, when fewer). The table fills what the panels leave.
    """
    wanted = max(PANELS_MIN_LINES, int(room * PANELS_MIN_SHARE), room - table_needs)
    lines = min(wanted, room - min(table_needs, table_least))
    return lines if lines >= PANELS_SQUEEZED_LINES else 0


class MainScreen(NodeActionsScreen):
    """Header, power history, node table and the jobs/events panels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: run as the app takes the key, before it sends the next keys of a burst on (to the open filter)
        Binding(
            "slash",
            "filter",
            "Filter",
            key_display="/",
            priority=True,
            tooltip="filter by node set (demo[01-04], @rack-a) or words",
        ),
        Binding("e", "toggle_panels", "Panels", show=False, tooltip="show or hide the jobs and events panels"),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="clear the filter"),
        *NodeActionsScreen.BINDINGS,
    ]

    def __init__(self, factory: str, initial_filter: str = "") -> None:
        super().__init__(id="main")
        self.factory = factory
        self.filter_text = initial_filter
        self.panels_wanted: bool | None = None  # None: decided by the terminal's height
        #: Why the filter names no node (the CLI's sentence for the same TARGET), or None.
        self.filter_problem: str | None = None

    def compose(self) -> ComposeResult:
        """The layout."""
        yield FactoryHeader(self.factory, id="header")
        yield PowerHistory(id="power")
        yield NodeTable(id="nodes")
        with Horizontal(id="panels"):
            yield JobsPanel(id="jobs")
            yield EventsPanel(id="events")
        filter_bar = FilterBar(id="filter")
        filter_bar.value = self.filter_text  # shown in the table's subtitle; `/` opens the bar to edit it
        yield filter_bar
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Follow the app's snapshots."""
        if quitting(self):  # built as the dashboard quits: none of its widgets are there
            return
        self.watch(self.app, "snapshot", self.show_snapshot, init=True)
        self.query_one(NodeTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        """Fold the panels away on short terminals unless the operator asked for them; size them once laid out."""
        if not quitting(self):
            self._size_panels()
            self.call_after_refresh(self._size_panels)

    def _size_graph(self) -> None:
        """Hide the power graph on a terminal too short for it and the table's least (`TABLE_MIN_ROWS` rows)."""
        table, graph = self.query_one(NodeTable), self.query_one(PowerHistory)
        fixed = sum(self.query_one(part).outer_size.height for part in ("#header", Footer))
        filter_bar = self.query_one(FilterBar)
        fixed += filter_bar.outer_size.height if filter_bar.display else 0
        chrome = table.outer_size.height - table.scrollable_content_region.height
        table_least = chrome + 1 + min(table.row_count, TABLE_MIN_ROWS)
        height = graph.styles.height
        graph_lines = int(height.value) if height is not None and height.is_cells else POWER_GRAPH_LINES
        show = self.size.height - fixed - graph_lines >= table_least
        if graph.display != show:  # every snapshot comes here: no layout pass when unchanged
            graph.display = show

    def _panels_room(self) -> tuple[int, int]:
        """The panels' height now (`panels_lines`; 0: no room) and the lines the terminal lacks for them (0: none)."""
        table = self.query_one(NodeTable)
        fixed = sum(self.query_one(part).outer_size.height for part in ("#header", "#power", Footer))
        filter_bar = self.query_one(FilterBar)
        fixed += filter_bar.outer_size.height if filter_bar.display else 0  # docked under the table while open
        chrome = table.outer_size.height - table.scrollable_content_region.height  # borders, a sideways scrollbar
        room = self.size.height - fixed
        table_least = chrome + 1 + min(table.row_count, TABLE_MIN_ROWS)  # its header and a few rows, always
        lines = panels_lines(room, chrome + 1 + table.row_count, table_least)
        return lines, 0 if lines else table_least + PANELS_SQUEEZED_LINES - room

    def _size_panels(self) -> None:
        """Show the panels when wanted and there is room beside the table's least, sized by `panels_lines`.

        Wanted: as the operator's `e` asked, else on a terminal of `PANELS_MIN_HEIGHT` lines or more.
        """
        if quitting(self):
            return
        self._size_graph()  # the graph gives way before the table's least, the panels before either
        lines, _ = self._panels_room()
        wanted = self.panels_wanted if self.panels_wanted is not None else self.size.height >= PANELS_MIN_HEIGHT
        panels = self.query_one("#panels")
        show = wanted and lines > 0
        if panels.display != show:  # every snapshot comes here: no layout pass when unchanged
            panels.display = show
        if lines and (panels.styles.height is None or panels.styles.height.cells != lines):  # no layout when unchanged
            panels.styles.height = lines

    def action_toggle_panels(self) -> None:
        """`e`: show or hide the jobs and events panels; on a terminal too short for them, say so (the table stays)."""
        show = not self.query_one("#panels").display
        lines, missing = self._panels_room()
        if show and not lines:
            width, height = self.size
            self.notify(
                f"no room for the jobs and events panels at {width}x{height}: the node table keeps its rows in view; "
                f"the panels need a terminal {height + missing} lines tall",
                title="panels",
                markup=False,
            )
            return
        by_height = self.size.height >= PANELS_MIN_HEIGHT
        self.panels_wanted = None if show == by_height else show  # the terminal's own choice: it follows resizes again
        self._size_panels()

    def show_snapshot(self, snapshot: FactorySnapshot | None) -> None:
        """Draw a new snapshot in every widget."""
        if snapshot is None:
            return
        self.query_one(FactoryHeader).show(snapshot)
        self.query_one(PowerHistory).show(snapshot)
        self._show_rows(snapshot)
        self.query_one(JobsPanel).show(snapshot.jobs, snapshot.jobs_running, snapshot.queue_length)
        self.query_one(EventsPanel).show(snapshot.events)

    def _show_rows(self, snapshot: FactorySnapshot, refiltered: bool = False) -> None:
        table = self.query_one(NodeTable)
        rows = node_rows(snapshot)
        result = filter_nodes(rows, self.filter_text, snapshot.groups)
        shown = result.rows
        self.filter_problem = result.problem
        table.show_rows(shown, refiltered=refiltered)
        self._size_panels()  # a filter or a new node changes the rows the table needs
        title = f"nodes {len(shown)} of {len(rows)}" if self.filter_text else f"nodes {len(rows)}"
        arrow = "▼" if table.sort_reverse else "▲"
        table.border_title = Content(f"{title} · sort {SORT_KEYS[table.sort_column][0].split()[0].lower()} {arrow}")
        notes = ["read-only"] if self.dashboard.read_only else []
        if self.filter_text:
            notes.append(f"filter: {self.filter_text}")
        if self.filter_problem:  # said as the operator types, in the bar's own line: a typo is never a silent 0
            notes.append(self.filter_problem)
        table.border_subtitle = Content(" · ".join(notes))  # typed text, shown as typed: `[/]` is no markup here

    def current_node(self) -> str | None:
        """The node under the table's cursor."""
        return self.query_one(NodeTable).selected_node

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`/` is a character of the filter while the filter bar has focus (the binding has priority over it)."""
        if action == "filter" and isinstance(self.focused, FilterBar):
            return False
        return super().check_action(action, parameters)

    def action_filter(self) -> None:
        """`/`: open the filter bar."""
        self.query_one(FilterBar).open(back_to=self.query_one(NodeTable))
        self.call_after_refresh(self._size_panels)  # the open bar takes lines from the table and the panels

    def action_clear_filter(self) -> None:
        """Esc on the table: clear a filter that was kept with Enter (docs/dashboard.md: Esc clears it)."""
        if self.filter_text:
            self.query_one(FilterBar).action_clear_filter()

    def on_filter_bar_filter_changed(self, event: FilterBar.FilterChanged) -> None:
        """Re-filter the table as the operator types."""
        self.filter_text = event.text
        if self.dashboard.snapshot is not None:
            self._show_rows(self.dashboard.snapshot, refiltered=True)

    def on_filter_bar_filter_closed(self, event: FilterBar.FilterClosed) -> None:
        """Back to the table; a kept filter that names no node says why (the table's border may crop it)."""
        self.set_focus(self.query_one(NodeTable))  # now: keys still on their way to the app go to the table
        self.call_after_refresh(self._size_panels)  # the closed bar gives its lines back
        if self.filter_text and self.filter_problem:
            self.notify(self.filter_problem, title="filter", severity="warning", timeout=10, markup=False)

    def on_node_table_sort_changed(self, event: NodeTable.SortChanged) -> None:
        """Update the table's title."""
        if self.dashboard.snapshot is not None:
            self._show_rows(self.dashboard.snapshot)

    def on_node_table_node_selected(self, event: NodeTable.NodeSelected) -> None:
        """Enter: open the node screen."""
        from factoryctl.tui.screens.node import NodeScreen

        self.app.push_screen(NodeScreen(event.node))
