"""A node's `xid` flag (an XID in the hour before its sample) outlasts its agent's restart, with or without a controller.

An agent lists only the XIDs raised since it started, so a reconnect used to clear the flag on the dashboard's own
collector: the first sample of the new agent lists none. The controller's writer keeps a GPU's earlier XIDs
(`carry_forward`); the dashboard's collector keeps them the same way. Real store, real `StoreWriter`; the node's
samples are handed to each judge as its link would hand them.
"""

from __future__ import annotations

import time
from pathlib import Path

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.errors import NodeError
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.model.telemetry import GpuSample, NodeSample, XidEvent
from factoryctl.store import open_store
from factoryctl.telemetry.writer import StoreWriter
from factoryctl.tui.renderables.node_rows import recent_xid


def config_of(tmp_path: Path) -> FactoryConfig:
    yaml = "name: t\ncontroller: {interval_s: 1.0}\nnodes:\n  n1: {transport: local, sim: h100-sxm}\n"
    return parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state")


def before_and_after_restart(now: float) -> tuple[NodeSample, NodeSample]:
    """A sample listing an XID of 10 minutes ago, and the restarted agent's first sample, which lists none."""
    xid = XidEvent(79, now - 600)
    seen = NodeSample("n1", now - 5, gpus=(GpuSample("n1", 0, power_w=300.0, xid_events=(xid,)),))
    restarted = NodeSample("n1", now, gpus=(GpuSample("n1", 0, power_w=300.0),))
    return seen, restarted


def test_the_dashboards_own_collector_keeps_the_flag_across_a_reconnect(tmp_path: Path) -> None:
    services = PolledServices(config_of(tmp_path), use_store=False)  # links never started: fed here
    node = services._nodes["n1"]
    now = time.time()
    seen, restarted = before_and_after_restart(now)
    try:
        node.offer(seen)
        node.link_failed("n1", NodeError("n1", "agent", "n1: the agent exited."))
        node.link_connected("n1")
        node.offer(restarted)
        shown = node.judge(now)
    finally:
        services.close()
    assert shown.state == "up"
    assert shown.gpus[0].xid_events == (XidEvent(79, now - 600),)
    assert recent_xid(shown)


def test_with_a_controller_the_stored_sample_keeps_it(tmp_path: Path) -> None:
    config = config_of(tmp_path)
    config.state_dir.mkdir(parents=True)
    store = open_store(config.store_path)
    writer = StoreWriter(store, 1.0)
    writer.set_nodes(["n1"])
    now = time.time()
    seen, restarted = before_and_after_restart(now)
    try:
        writer.offer(seen)
        writer.flush()
        writer.link_failed("n1", NodeError("n1", "agent", "n1: the agent exited."))
        writer.link_connected("n1")
        writer.offer(restarted)
        writer.flush()
    finally:
        writer.stop()
        store.close()
    services = StoreServices(config)
    try:
        (shown,) = services.snapshot().nodes
    finally:
        services.close()
    assert shown.gpus[0].xid_events == (XidEvent(79, now - 600),)
    assert recent_xid(shown)
