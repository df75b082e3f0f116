"""The node screen's header: who the node is, how it is reached, and its state in words."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.node_rows import STATE_STYLES


def node_summary_text(sample: NodeSample | None, node: str, rack: str | None, drained: bool) -> Text:
    """Two lines: identity and state; power and temperature."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(node, style="bold")
    if sample is None:
        line.append("  not in the latest snapshot", style="bright_black")
        return line
    line.append("  ")
    line.append(sample.state, style=STATE_STYLES.get(sample.state, ""))
    line.append("  drained" if drained else "  schedulable", style="yellow" if drained else "")
    line.append("  healthy" if sample.healthy else "  UNHEALTHY", style="" if sample.healthy else "bold red")
    line.append(f"  rack {rack or '—'}  agent {sample.agent_version or '—'} ({sample.backend or '—'})")
    line.append(f"  seen {fmt.clock(sample.time)}", style="bright_black")
    second = Text(no_wrap=True, overflow="ellipsis")
    if sample.state == "down" or sample.error:
        second.append(f"{sample.error or 'down'}: {sample.message or 'no answer'}", style="bold red")
    else:
        second.append(
            f"{len(sample.gpus)} GPUs  power {fmt.watts(sample.power_w)} of {fmt.watts(sample.power_limit_w)} caps"
            f"  hottest {fmt.celsius(sample.hottest_temperature_c)}"
        )
        if sample.host and sample.host.cpu_pct is not None:
            second.append(f"  host CPU {fmt.percent(sample.host.cpu_pct)} load {sample.host.load_1m or 0:.1f}")
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

    def show(self, sample: NodeSample | None, rack: str | None, drained: bool) -> None:
        """Show a new sample of the node."""
        self.sample, self.rack, self.drained = sample, rack, drained
        self.refresh()

    def render(self) -> RenderableType:
        """Two summary lines."""
        return node_summary_text(self.sample, self.node, self.rack, self.drained)
