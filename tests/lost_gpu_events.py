"""A store where one GPU's loss lies behind many newer events: the dashboard must still show it.

Shared by the services' test (tests/live) and the node screen's (tests/tui): a controller's start on 200 nodes
stores 200 `node_up` events, and the newest 200 of the hour held none of demo01's lost GPU.
"""

from __future__ import annotations

import time
from typing import Any

from factoryctl.store import open_store
from factoryctl.store.rows import Event

LOST = "demo01/3: GPU fell off the bus"


def store_a_lost_gpu_then_many_nodes_up(config: Any, ups: int = 250) -> None:
    """demo01's GPU 3 lost, then `ups` `node_up` events of the other nodes (a controller starting, over and over)."""
    now = time.time()
    store = open_store(config.store_path)
    try:
        store.add_events([Event(now - 120, "gpu_lost", LOST, "demo01", 3, "error")])
        others = [f"demo0{i}" for i in range(2, 9)]
        store.add_events(
            [Event(now - 60 + i * 0.1, "node_up", f"{others[i % 7]} is up", others[i % 7]) for i in range(ups)]
        )
    finally:
        store.close()
