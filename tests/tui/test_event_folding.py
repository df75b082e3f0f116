"""A controller's start (one `X is up` event per node) is one line of the events panel, not 64 pushing alarms out.

Real SQLite store, written as a controller writes its events; read through the dashboard's store services.
"""

from __future__ import annotations

import time
from pathlib import Path

from factoryctl.demo import demo_config
from factoryctl.live.event_folding import fold_state_events
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_store import StoreServices
from factoryctl.store import open_store
from factoryctl.store.rows import Event


def test_a_controller_start_reads_as_one_line_and_keeps_the_ecc_error_in_view(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    now = time.time()
    ecc = Event(now - 20, "ecc", "demo03/1: uncorrectable ECC errors 1", node="demo03", gpu=1, severity="error")
    ups = [Event(now - 10 + i * 0.05, "node_up", f"demo0{i} is up", node=f"demo0{i}") for i in range(1, 9)]
    store = open_store(config.store_path)
    try:
        store.add_events([ecc, *ups])
    finally:
        store.close()
    services = StoreServices(config)
    try:
        events = services.snapshot().events
    finally:
        services.close()
    assert [(e.node, e.kind, e.message) for e in events] == [
        ("demo03", "ecc", "demo03/1: uncorrectable ECC errors 1"),
        (None, "node_up", "8 nodes up (demo[01-08])"),
    ]
    assert events[1].nodes == tuple(f"demo0{i}" for i in range(1, 9))
    assert abs(events[1].time - ups[0].time) < 0.01


def event(at: float, node: str, kind: str, message: str) -> DashboardEvent:
    return DashboardEvent(at, node, kind, message, "error" if kind == "node_down" else "info")


def test_only_alike_state_events_close_together_fold() -> None:
    events = [
        event(0.0, "n1", "node_down", "n1 is down: the agent exited"),
        event(0.1, "n2", "node_down", "n2 is down: the agent exited"),
        event(0.2, "n3", "node_down", "n3 is down: connection refused"),  # another reason
        event(0.3, "n4", "node_down", "n4 is down: the agent exited"),
        event(0.4, "n4", "drain", "n4 drained by root: fan"),
        event(100.0, "n5", "node_down", "n5 is down: the agent exited"),  # much later: a burst of its own
        event(100.1, "n6", "node_up", "n6 is up"),
        event(100.2, "n7", "node_up", "n7 is up"),  # two: left as they are
    ]
    folded = fold_state_events(events)
    assert [(e.time, e.node, e.message) for e in folded] == [
        (0.0, None, "3 nodes down: the agent exited (n[1-2,4])"),
        (0.2, "n3", "n3 is down: connection refused"),
        (0.4, "n4", "n4 drained by root: fan"),
        (100.0, "n5", "n5 is down: the agent exited"),
        (100.1, "n6", "n6 is up"),
        (100.2, "n7", "n7 is up"),
    ]
    assert folded[0].severity == "error"
