"""A local agent's pipes are all closed when it is done with: none left for the garbage collector to find.

Its stderr used to stay open (and, when the transport was closed without the session, its stdin and stdout too),
and the collector's ResourceWarning then surfaced in whichever later test happened to run the garbage collection.
"""

from __future__ import annotations

import pytest
from leaks import resource_warnings

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport.local import LocalTransport


def node(python: str = "python3") -> NodeSpec:
    return NodeSpec(name="ws", host="ws", transport="local", python=python, sim=SimSpec(gpus=2))


def test_a_closed_session_leaves_no_pipe_open(tmp_path):
    with resource_warnings() as leaks:
        transport = LocalTransport(node(), "lab", tmp_path)
        session = transport.start_agent(60)
        assert session.hello_info["type"] == "hello"
        session.close()
        transport.close()
        del session, transport
    assert leaks == []


def test_closing_the_transport_first_closes_the_agents_pipes(tmp_path):
    """Without the session's close first (a CLI leaving): EOF on its stdin ends the agent."""
    with resource_warnings() as leaks:
        transport = LocalTransport(node(), "lab", tmp_path)
        session = transport.start_agent(60)
        transport.close()
        session.close()
        del session, transport
    assert leaks == []


def test_an_agent_that_never_says_hello_leaves_no_pipe_open(tmp_path):
    with resource_warnings() as leaks:
        transport = LocalTransport(node(python="false"), "lab", tmp_path)
        with pytest.raises(NodeError) as caught:
            transport.start_agent(60)
        assert caught.value.kind == "agent"
        transport.close()
        del transport, caught
    assert leaks == []


def test_closing_a_session_whose_agent_is_stopped_does_not_wait_for_it(tmp_path):
    """A SIGSTOPped agent held `close()` (and so the link's teardown) until SIGCONT: its reader held stdout."""
    import os
    import signal
    import threading

    import psutil

    transport = LocalTransport(node(), "lab", tmp_path)
    before = {p.pid for p in psutil.Process().children()}
    session = transport.start_agent(60)
    (agent,) = [p for p in psutil.Process().children() if p.pid not in before]
    session.stream(0.2, lambda sample: None, timeout=30)
    os.kill(agent.pid, signal.SIGSTOP)
    closer = threading.Thread(target=session.close, kwargs={"timeout": 0.5}, daemon=True)
    try:
        closer.start()
        closer.join(30)
        assert not closer.is_alive()  # it waited for SIGCONT before
        assert not agent.is_running() or agent.status() == psutil.STATUS_ZOMBIE
    finally:
        if agent.is_running():
            os.kill(agent.pid, signal.SIGCONT)
        transport.close()
