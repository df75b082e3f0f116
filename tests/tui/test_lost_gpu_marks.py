"""A GPU that fell off the bus is named in the tables, not drawn as a value the driver does not report.

The factory table drew a lost GPU's bars as `·` (the mark of "not reported") and the node screen's GPU row was all
`—`: only the detail pane said "GPU lost". Now its bars read `x` (alarm style, bold reverse without colour) and its
row's Util cell reads `lost`.
"""

from __future__ import annotations

import dataclasses

from factory_data import fixed_snapshot
from test_cap_lost_gpu import with_lost

from factoryctl.tui.renderables.gpu_bars import LOST, MISSING
from factoryctl.tui.renderables.node_rows import cell_pieces
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.view import node_rows
from factoryctl.tui.widgets.gpu_table import gpu_cells


def test_the_factory_table_marks_a_lost_gpu_in_every_bar() -> None:
    snapshot = fixed_snapshot()
    lost_node = with_lost(1, (1,))
    rows = node_rows(dataclasses.replace(snapshot, nodes=(lost_node, *snapshot.nodes[1:])))
    cells = cell_pieces(next(r for r in rows if r.name == "demo01"))
    for column in ("util", "power", "temp"):
        text, style = cells[column][1]
        assert (text, style) == (LOST, tone("alarm")), column
        assert LOST != MISSING
        assert all(t != LOST for t, _ in cells[column][:1] + cells[column][2:8]), column


def test_the_node_screen_names_a_lost_gpu_in_its_row() -> None:
    lost_gpu = with_lost(1, (1,)).gpus[1]
    util = gpu_cells(lost_gpu)[1]
    assert util.plain == "lost"
    assert str(util.style) == tone("alarm")
    assert gpu_cells(with_lost(1, ()).gpus[1])[1].plain.endswith("%")
