"""What the dashboard needs of `NodeLink` and `transport_connector`: a stop-aware connect and the live session.

Real local simulated nodes (the agent is a subprocess), no fake transport.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from agent_processes import agents_of
from fakefleet import Sink

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.errors import NodeError
from factoryctl.telemetry.links import Backoff, NodeLink, transport_connector


def local_config(tmp_path: Path) -> FactoryConfig:
    text = "name: t\nnodes:\n  s1: {transport: local, sim: h100-sxm, gpus: 1}\ncontroller: {interval_s: 0.2}\n"
    return parse_config(text, tmp_path / "factory.yaml", state_dir=tmp_path / "state")


def test_a_connector_told_to_stop_starts_no_agent(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    stop = threading.Event()
    stop.set()  # quitting while the node's transport was opening
    connect = transport_connector(config, 20.0, stop=stop)
    with pytest.raises(NodeError) as closed:
        connect(config.nodes["s1"])
    assert (closed.value.node, closed.value.message) == ("s1", "closed before its agent was started.")  # node once
    assert agents_of("s1") == []


def test_the_link_lends_its_live_session_and_takes_it_back(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    sink = Sink()
    link = NodeLink(config.nodes["s1"], 0.2, transport_connector(config, 20.0), sink, Backoff(), stream_timeout_s=20.0)
    assert link.session is None
    link.start()
    try:
        deadline = time.monotonic() + 20
        while not sink.samples and not sink.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.samples, sink.errors
        session = link.session
        assert session is not None
        assert session.sample().node == "s1"  # another thread's request on the streaming session
        assert not link.connecting
    finally:
        link.stop()
        link.join(10)
    assert link.session is None
    assert agents_of("s1") == []
    assert sink.errors == []  # stopping is not a failure
