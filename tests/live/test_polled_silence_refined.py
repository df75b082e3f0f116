"""The dashboard's own collector says once when a node down for its silence gets the reason a failure gives.

The controller records a node down for "3 samples missed." again once a failure says why, even of the same kind
(`timeout`: `no answer from ... within 5 s`), and only once (telemetry/health.py, `NodeHealth.failed`). The dashboard
polling the nodes itself showed the new reason but said nothing: its events panel kept "3 samples missed." as the
outage's reason. Real `NodeHealth` and `PolledNode`, on a monotonic clock the test moves.
"""

from __future__ import annotations

import time
from pathlib import Path

from factoryctl.demo import demo_config
from factoryctl.errors import NodeError
from factoryctl.live.services_polled import PolledServices
from factoryctl.model.telemetry import NodeSample

NODE = "demo01"
NO_ANSWER = "no answer from 10.0.0.2:22 within 5 s"


def test_a_silent_node_s_reason_refined_by_a_failure_of_its_kind_is_one_event(tmp_path: Path) -> None:
    services = PolledServices(demo_config(tmp_path / "state"), NODE, use_store=False)  # not started: no link runs
    clock = [1000.0]
    services.monotonic = lambda: clock[0]
    try:
        node = services._nodes[NODE]
        node.offer(NodeSample(node=NODE, time=time.time(), state="up"))  # heard from once
        while node.judge().state != "down":  # silent, judged as time passes, until its silence takes it down
            clock[0] += services.interval_s / 2
        silent = node.judge().message
        node.link_failed(NODE, NodeError(NODE, "timeout", NO_ANSWER, None))
        node.link_failed(NODE, NodeError(NODE, "timeout", f"{NO_ANSWER} (again)", None))  # same kind: no news
        shown = node.judge()
        messages = [event.message for event in services.snapshot().events if event.node == NODE]
    finally:
        services.close()
    assert silent == "3 samples missed."
    assert (shown.state, shown.error, shown.message) == ("down", "timeout", f"{NO_ANSWER} (again)")
    assert [m for m in messages if "down" in m] == [
        f"{NODE} is down: 3 samples missed.",
        f"{NODE} is down: {NO_ANSWER}",
    ], messages
