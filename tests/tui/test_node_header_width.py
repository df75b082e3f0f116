"""The node table's header keeps `Node ▲` whole when every node name is shorter than it.

The node column widened to its longest name from a floor of 4 cells, so a factory of one node `ws` showed the sorted
header as `No ▲` (the demo's 6-character names hid it). The floor is now the header with its sort arrow.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from factory_data import fixed_snapshot
from rich.console import Console

from factoryctl.tui.renderables.node_rows import NodeRowsRenderable, widths_for
from factoryctl.tui.view import NodeRow


def render(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reverse", "arrow"), [(False, "▲"), (True, "▼")])
def test_a_short_node_name_leaves_the_sorted_header_whole(reverse: bool, arrow: str) -> None:
    sample = dataclasses.replace(fixed_snapshot().nodes[0], node="ws")
    rows = [NodeRow(sample, None, drained=False)]
    header = render(NodeRowsRenderable(rows, "node", reverse=reverse), width=120).splitlines()[0]
    assert header.split()[:3] == ["Node", arrow, "State"], header
    assert dict(widths_for(rows))["node"] == len(f"Node {arrow}")
