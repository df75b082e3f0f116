"""A state or flag typed into the filter matches that whole word: `healthy` keeps only the healthy nodes.

The words were matched as parts of the row's text, and every unhealthy node's text holds `unhealthy`: with 20
unhealthy nodes of 200, `/healthy` showed 200 of 200.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from factory_data import fixed_snapshot

from factoryctl.tui.view import filter_nodes, node_rows


def test_healthy_keeps_only_the_healthy_nodes() -> None:
    snap = fixed_snapshot()
    rows = node_rows(snap)
    healthy = [r.name for r in rows if r.sample.healthy]
    assert 0 < len(healthy) < len(rows)
    assert [r.name for r in filter_nodes(rows, "healthy", snap.groups).rows] == healthy
    assert [r.name for r in filter_nodes(rows, "HEALTHY", snap.groups).rows] == healthy
    unhealthy = [r.name for r in filter_nodes(rows, "unhealthy", snap.groups).rows]
    assert sorted(unhealthy + healthy) == sorted(r.name for r in rows)


def test_down_is_no_match_for_shutdown_in_an_error() -> None:
    snap = fixed_snapshot()
    first = replace(snap.nodes[0], error="agent shutdown")
    snap = replace(snap, nodes=(first, *snap.nodes[1:]))
    names = [r.name for r in filter_nodes(node_rows(snap), "down", snap.groups).rows]
    assert first.node not in names
    assert names == [n.node for n in snap.nodes if n.state == "down"]


@pytest.mark.parametrize(("text", "expected"), [("heal", 8), ("demo0", 8), ("01", 1), ("drained", 1)])
def test_other_words_still_match_as_typed_so_far(text: str, expected: int) -> None:
    snap = fixed_snapshot()
    assert len(filter_nodes(node_rows(snap), text, snap.groups).rows) == expected
