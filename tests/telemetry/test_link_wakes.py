"""A connected link sleeps until its stall deadline, and a failed session wakes it at once.

It used to look at its session every half interval (twice a second per node at 1 Hz); now the session's failure sets
the link's wake event. A link streaming at 60 s (its old look every 30 s) with a 600 s stall must still report an
agent's death at once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from fakefleet import FakeFleet, Sink, make_config, wait_for

from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.transport.session import AgentSession


def test_an_agent_dying_wakes_its_sleeping_link_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, nodes="n1", interval=60.0)
    fleet, sink = FakeFleet(), Sink()
    link = NodeLink(config.nodes["n1"], 60.0, fleet.connector(config), sink, Backoff(base_s=60.0), stall_s=600.0)
    link.start()
    try:
        wait_for(lambda: link.session is not None)  # streaming (its first sample is 60 s away)
        fleet.kill("n1")
        wait_for(lambda: bool(sink.errors), 20.0)  # before: only at the next look, up to 30 s later
        assert "the agent exited" in sink.errors[0].message
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()


def test_a_session_that_failed_already_wakes_at_once() -> None:
    read, write = os.pipe()
    os.close(write)  # the agent is gone before anyone listens
    with open(read, "rb") as stdout, open(os.devnull, "wb") as stdin:
        session = AgentSession("n1", stdin, stdout)
        wait_for(lambda: session.failure is not None)
        woken = threading.Event()
        session.wake_on_failure(woken)
        assert woken.is_set()
        session.close()
