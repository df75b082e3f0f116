"""A node a pass found silent is offered to the scheduler as down for a minute, then as the store says again."""

from __future__ import annotations

from pathlib import Path

from factoryctl.jobs.cluster import Cluster
from factoryctl.jobs.silent import SILENT_HOLD_S, held_down, remember_silent, silent_nodes
from factoryctl.model.jobs import SchedNode
from factoryctl.store.sqlite import Store


def test_a_silent_node_is_held_down_for_its_minute(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    remember_silent(store, {"n2"}, now=1000.0)
    assert silent_nodes(store, 1000.0 + SILENT_HOLD_S - 1) == {"n2"}
    assert silent_nodes(store, 1000.0 + SILENT_HOLD_S) == set()
    remember_silent(store, set(), now=1000.0 + SILENT_HOLD_S)  # expired entries forgotten
    assert store.get_meta("scheduler.silent_nodes") == "{}"
    cluster = Cluster((SchedNode("n1", 8), SchedNode("n2", 8)), {"n1": tuple(range(8)), "n2": tuple(range(8))}, ())
    held = held_down(cluster, {"n2"})
    assert [(n.name, n.state, n.schedulable) for n in held.nodes] == [("n1", "up", True), ("n2", "down", False)]
    store.close()
