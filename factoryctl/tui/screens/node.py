"""One node in full: every GPU's fields, its recent history and its events (asked for that node alone).

UUIDs, the job holding each GPU, throttle reasons in words, processes, ECC and the power-limit range are all shown.
Esc or q goes back.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer

from factoryctl.live.services import FactorySnapshot, GpuJob, NodeHistory
from factoryctl.tui.screens.lifecycle import quitting
from factoryctl.tui.screens.node_actions import NodeActionsScreen
from factoryctl.tui.widgets.events_panel import EventsPanel
from factoryctl.tui.widgets.gpu_detail import GpuDetail
from factoryctl.tui.widgets.gpu_table import GpuTable
from factoryctl.tui.widgets.node_summary import NodeSummary


class NodeScreen(NodeActionsScreen):
    """GPU table on top, the highlighted GPU's detail and history below, the node's events at the bottom."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", key_display="esc", tooltip="back to the factory"),
        *NodeActionsScreen.BINDINGS,
    ]

    def __init__(self, node: str) -> None:
        super().__init__(id="node-screen")
        self.node = node
        self.gpu_index = 0
        self.history: NodeHistory | None = None
        self._history_pending = False

    def compose(self) -> ComposeResult:
        """The layout."""
        yield NodeSummary(self.node, id="node-summary")
        yield GpuTable(id="gpus")
        with VerticalScroll(id="detail-scroll"):
            yield GpuDetail(id="detail")
            yield EventsPanel(node=self.node, id="node-events")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Follow the app's snapshots."""
        if quitting(self):  # built as the dashboard quits: none of its widgets are there
            return
        table = self.query_one(GpuTable)
        table.border_subtitle = "read-only" if self.dashboard.read_only else ""
        self.watch(self.app, "snapshot", self.show_snapshot, init=True)
        table.focus()

    def current_node(self) -> str | None:
        """This screen's node."""
        return self.node

    def show_snapshot(self, snapshot: FactorySnapshot | None) -> None:
        """Draw the node's part of a new snapshot and ask for its history."""
        if snapshot is None:
            return
        sample = snapshot.node(self.node)
        summary = self.query_one(NodeSummary)
        summary.show(sample, snapshot.racks.get(self.node), self.node in snapshot.drained, snapshot.time)
        gpus = sample.gpus if sample else ()
        self.query_one(GpuTable).show(gpus, self._jobs(snapshot), self.history)
        self._show_events()
        self._show_detail()
        if not self._history_pending:
            self._history_pending = True
            self._fetch_history()

    def _show_events(self) -> None:
        """The node's own events, fetched with its history (off this thread); the snapshot's until they come.

        The snapshot holds the factory's newest events only, which may hold none of this node's.
        """
        own = self.history.events if self.history is not None else None
        snapshot = self.dashboard.snapshot
        events = own if own is not None else snapshot.events if snapshot is not None else ()
        self.query_one(EventsPanel).show(events)

    def _jobs(self, snapshot: FactorySnapshot | None) -> dict[int, GpuJob]:
        """The job holding each GPU of this node, by index, as `snapshot` knows it (none: unknown, the table says)."""
        sample = snapshot.node(self.node) if snapshot else None
        if snapshot is None or sample is None:
            return {}
        return {gpu.index: snapshot.gpu_job(self.node, gpu.index) for gpu in sample.gpus}

    def _show_detail(self) -> None:
        snapshot = self.dashboard.snapshot
        sample = snapshot.node(self.node) if snapshot else None
        gpu = next((g for g in sample.gpus if g.index == self.gpu_index), None) if sample else None
        history = self.history.gpu(self.gpu_index) if self.history else None
        job = snapshot.gpu_job(self.node, self.gpu_index) if snapshot is not None and gpu is not None else None
        self.query_one(GpuDetail).show(gpu, history, job)

    @work(thread=True, group="history", exit_on_error=False)
    def _fetch_history(self) -> None:
        try:
            history = self.dashboard.services.node_history(self.node)
        except Exception:  # a history gap must never take the screen down
            history = None
        self.app.call_from_thread(self._history_arrived, history)

    def _history_arrived(self, history: NodeHistory | None) -> None:
        self._history_pending = False
        if history is not None:
            self.history = history
            snapshot = self.dashboard.snapshot
            sample = snapshot.node(self.node) if snapshot else None
            self.query_one(GpuTable).show(sample.gpus if sample else (), self._jobs(snapshot), history)
            self._show_events()
            self._show_detail()

    def on_gpu_table_gpu_highlighted(self, event: GpuTable.GpuHighlighted) -> None:
        """Detail the GPU under the cursor."""
        self.gpu_index = event.index
        self._show_detail()

    def action_back(self) -> None:
        """Back to the factory."""
        self.dismiss()
