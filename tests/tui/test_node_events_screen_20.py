"""The node screen shows its node's own stored events, and the events panel keeps the newest errors in view.

After a controller's start on many nodes (a `node_up` per node) the node screen said "no events yet" while the store
held the node's GPU lost, and a panel a few lines tall showed only the newest warnings. Real SQLite store.
"""

from __future__ import annotations

import time
from pathlib import Path

from lost_gpu_events import LOST, store_a_lost_gpu_then_many_nodes_up
from pilot_helpers import RecordingApp, first_snapshot, plain, wait_until

from factoryctl.demo import demo_config
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_store import StoreServices
from factoryctl.tui.renderables.feed_lists import EventsRenderable
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.widgets.events_panel import EventsPanel


async def test_the_node_screen_shows_its_lost_gpu_behind_many_newer_events(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    store_a_lost_gpu_then_many_nodes_up(config)
    services = StoreServices(config)
    app = RecordingApp(services)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await first_snapshot(pilot)
            app.push_screen(NodeScreen("demo01"))
            await wait_until(pilot, lambda: isinstance(app.screen, NodeScreen), what="the node screen")

            def shown() -> tuple[DashboardEvent, ...]:
                panels = app.screen.query(EventsPanel)
                return panels.first().events if panels else ()

            await wait_until(pilot, lambda: LOST in [e.message for e in shown()], what="demo01's GPU lost")
            panel = app.screen.query_one(EventsPanel)
            text = plain(EventsRenderable(panel.events, limit=10, node="demo01"), width=100)
            assert "GPU 3: GPU fell off the bus" in text
            assert "no events yet" not in text
    finally:
        services.close()


def test_the_newest_errors_stay_in_a_short_panel_behind_many_warnings() -> None:
    now = time.time()
    events = [
        DashboardEvent(now - 100, "demo01", "xid", "demo01/2: XID 79", "error"),
        DashboardEvent(now - 90, "demo01", "gpu_lost", "demo01/3: GPU fell off the bus", "error"),
        *(DashboardEvent(now + i, f"demo{i:02}", "thermal", "thermal slowdown", "warning") for i in range(1, 30)),
    ]
    lines = plain(EventsRenderable(events, limit=6), width=80).splitlines()
    assert len(lines) == 6
    assert "GPU 3: GPU fell off the bus" in lines[-2]
    assert "GPU 2: XID 79" in lines[-1]
    assert "demo29" in lines[0]  # the newest first still
    assert all("thermal" in line for line in lines[:4])


def test_a_panel_of_one_line_shows_the_newest_error() -> None:
    now = time.time()
    events = [
        DashboardEvent(now - 90, "demo01", "gpu_lost", "demo01/3: GPU fell off the bus", "error"),
        DashboardEvent(now, "demo02", "thermal", "thermal slowdown", "warning"),
    ]
    lines = plain(EventsRenderable(events, limit=1), width=80).splitlines()
    assert len(lines) == 1
    assert "fell off the bus" in lines[0]
