"""A node's alarms stay in view when many newer events come (a controller's start stores a `node_up` per node).

The dashboard read the newest 200 events of the hour and the node screen picked its node's from them: after 200
`node_up`, demo01's screen said "no events yet" while the store held its GPU lost. The node screen now asks for its
node's own events (with its history, off the UI thread), and the factory panel's events keep the newest alarms.
Real SQLite stores throughout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lost_gpu_events import LOST, store_a_lost_gpu_then_many_nodes_up

from factoryctl.demo import demo_config
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices


@pytest.fixture
def config(tmp_path: Path):
    return demo_config(tmp_path / "state")


def test_the_node_screen_gets_the_nodes_own_stored_events(config) -> None:
    store_a_lost_gpu_then_many_nodes_up(config)
    services = StoreServices(config)
    try:
        history = services.node_history("demo01")
        assert history.events is not None
        assert [e.message for e in history.events] == [LOST]
        assert services.node_history("demo02").events
    finally:
        services.close()


def test_the_factory_events_keep_a_stored_alarm_behind_many_newer_events(config) -> None:
    store_a_lost_gpu_then_many_nodes_up(config)
    services = StoreServices(config)
    try:
        events = services.snapshot().events
        assert LOST in [e.message for e in events]
    finally:
        services.close()


def test_the_embedded_collector_gives_the_nodes_own_events_from_the_store(config) -> None:
    store_a_lost_gpu_then_many_nodes_up(config)
    services = PolledServices(config)  # not started: no node is reached, only the store is read
    try:
        history = services.node_history("demo01")
        assert history.events is not None
        assert LOST in [e.message for e in history.events]
    finally:
        services.close()


def test_the_embedded_collector_keeps_its_errors_behind_many_warnings(config) -> None:
    services = PolledServices(config, use_store=False)
    try:
        now = time.time()
        services.add_event(DashboardEvent(now, "demo01", "gpu_lost", LOST, "error"))
        for i in range(1000):  # more than the collector keeps
            services.add_event(DashboardEvent(now + i, "demo02", "thermal", "demo02/0: thermal slowdown", "warning"))
        history = services.node_history("demo01")
        assert history.events is not None
        assert [e.message for e in history.events] == [LOST]
    finally:
        services.close()
