"""A recent XID flags its node in the factory table, so it shows on terminals too short for the events panel.

XID 43 on demo03/2 (a non-fatal one: the node stays healthy) used to leave no trace on the factory screen below 34
lines, where the events panel folds away. Now a node whose GPU reported an XID in the last hour is flagged `xid`
(`xid dr` when drained too); an unhealthy node keeps its `unhealthy` (the alarm comes first, in 9 cells).
"""

from __future__ import annotations

import dataclasses

from factory_data import fixed_snapshot
from pilot_helpers import plain

from factoryctl.model.telemetry import XidEvent
from factoryctl.tui.renderables.node_rows import XID_RECENT_S, NodeRowsRenderable, flag_pieces
from factoryctl.tui.view import node_rows


def with_xid(name: str, seconds_ago: float | None):
    """The fixed factory with an XID 43 on `name`'s GPU 2, `seconds_ago` before its sample (None: no time known)."""
    snapshot = fixed_snapshot()
    nodes = []
    for sample in snapshot.nodes:
        if sample.node == name:
            gpus = list(sample.gpus)
            when = None if seconds_ago is None else sample.time - seconds_ago
            gpus[2] = dataclasses.replace(gpus[2], xid_events=(XidEvent(43, when),))
            sample = dataclasses.replace(sample, gpus=tuple(gpus))
        nodes.append(sample)
    return dataclasses.replace(snapshot, nodes=tuple(nodes))


def row_words(snapshot, name: str) -> list[str]:
    """The words of `name`'s row in the factory table (120 columns: every column shows)."""
    lines = plain(NodeRowsRenderable(node_rows(snapshot)), width=120).splitlines()
    return next(line for line in lines if name in line).split()


def test_a_recent_xid_flags_a_healthy_node() -> None:
    snapshot = with_xid("demo01", 30)
    assert all(n.healthy for n in snapshot.nodes if n.node == "demo01")
    assert row_words(snapshot, "demo01")[-2:] == ["xid", "a"]


def test_a_drained_node_with_a_recent_xid_reads_xid_dr() -> None:
    assert row_words(with_xid("demo03", None), "demo03")[-3:] == ["xid", "dr", "a"]


def test_an_old_xid_no_longer_flags_the_node() -> None:
    assert "xid" not in row_words(with_xid("demo01", XID_RECENT_S + 60), "demo01")


def test_an_unhealthy_node_keeps_its_alarm() -> None:
    assert row_words(with_xid("demo07", 10), "demo07")[-2:] == ["unhealthy", "b"]
    assert "".join(t for t, _ in flag_pieces(False, True, True, xid=True)) == "xid"
    assert "".join(t for t, _ in flag_pieces(True, False, True, xid=True)) == "unhlth dr"
