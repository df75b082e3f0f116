"""The node screen's header: who the node is, how it is reached, and its state in words."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.node_rows import state_style
from factoryctl.tui.renderables.palette import tone


def sample_time(sample: NodeSample, snapshot_time: float | None) -> float | None:
    """When the node last answered, or None when it never did (as far as this snapshot knows).

    The services stamp a node with no sample (still connecting, or refused from the start) with the snapshot's own
    time, so a down or connecting node whose time is not before the snapshot's has no "last seen" to show: showing
    it would make a node that never answered look seen at every refresh.
    """
    if sample.state in ("down", "connecting") and (snapshot_time is None or sample.time >= snapshot_time):
        return None
    return sample.time


def node_summary_text(
    sample: NodeSample | None, node: str, rack: str | None, drained: bool, snapshot_time: float | None = None
) -> Text:
    """Two lines: identity and state; power and temperature."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(node, style="bold")
    if sample is None:
        line.append("  not in the latest snapshot", style=tone("secondary"))
        return line
    line.append("  ")
    line.append(sample.state, style=state_style(sample.state))
    line.append("  drained" if drained else "  schedulable", style=tone("warn") if drained else "")
    line.append("  healthy" if sample.healthy else "  UNHEALTHY", style="" if sample.healthy else tone("alarm"))
    line.append(f"  rack {rack or '—'}  agent {sample.agent_version or '—'} ({sample.backend or '—'})")
    seen = sample_time(sample, snapshot_time)
    if seen is not None:  # no time at all rather than a made-up one
        line.append(f"  seen {fmt.clock(seen)}", style=tone("secondary"))
    second = Text(no_wrap=True, overflow="ellipsis")
    if sample.state == "down" or sample.error:
        second.append(f"{sample.error or 'down'}: {sample.message or 'no answer'}", style=tone("alarm"))
    elif sample.state == "stale":
        second.append(sample.message or "stale", style=tone("secondary"))
    else:
        second.append(
            f"{len(sample.gpus)} GPUs  power {fmt.watts(sample.power_w)} of {fmt.watts(sample.power_limit_w)} caps"
            f"  hottest {fmt.celsius(sample.hottest_temperature_c)}"
        )
        if sample.host and sample.host.cpu_pct is not None:
            load = sample.host.load_1m
            second.append(
                f"  host CPU {fmt.percent(sample.host.cpu_pct)} load {'—' if load is None else f'{load:.1f}'}"
            )
    return Text("\n").join([line, second])


class NodeSummary(Widget):
    """Identity and state of one node."""

    DEFAULT_CSS = """
    NodeSummary { height: 2; padding: 0 1; }
    """

    def __init__(self, node: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.node = node
        self.sample: NodeSample | None = None
        self.rack: str | None = None
        self.drained = False
        self.snapshot_time: float | None = None

    def show(self, sample: NodeSample | None, rack: str | None, drained: bool, snapshot_time: float | None) -> None:
        """Show a new sample of the node, from the snapshot taken at `snapshot_time`."""
        self.sample, self.rack, self.drained, self.snapshot_time = sample, rack, drained, snapshot_time
        self.refresh()

    def render(self) -> RenderableType:
        """Two summary lines."""
        return node_summary_text(self.sample, self.node, self.rack, self.drained, self.snapshot_time)
