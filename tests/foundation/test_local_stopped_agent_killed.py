"""Closing the session of a local agent that does not answer kills it at once, as the SSH path does.

A stopped (SIGSTOP) or hung agent never answers `shutdown` and never reads its stdin's EOF: the local transport
used to give it 2 s more anyway before SIGKILL, which every silent local node's teardown (and so its new session,
and the time it shows `down`) paid on top of the `shutdown` wait.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport.local import LocalTransport

#: The `shutdown` wait given to `close`: what a silent agent's teardown costs, and all it may cost.
SHUTDOWN_WAIT_S = 0.5


def test_a_stopped_local_agent_is_killed_as_soon_as_its_shutdown_went_unanswered(tmp_path: Path) -> None:
    transport = LocalTransport(NodeSpec(name="ws", host="ws", transport="local", sim=SimSpec(gpus=1)), "lab", tmp_path)
    before = {p.pid for p in psutil.Process().children()}
    session = transport.start_agent(60)
    (agent,) = [p for p in psutil.Process().children() if p.pid not in before]
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        session.close(timeout=SHUTDOWN_WAIT_S)
        took = time.monotonic() - started
        assert not session.shutdown_answered
        assert not agent.is_running()  # killed and reaped, not left stopped
        assert took < SHUTDOWN_WAIT_S + 1.0, f"close took {took:.2f} s"  # was the wait + 2 s before its SIGKILL
    finally:
        if agent.is_running():
            os.kill(agent.pid, signal.SIGCONT)
        transport.close()
