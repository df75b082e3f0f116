"""A connection is said silent only after a silence as long as its bound, never after a wait that was merely allowed.

Review of session 23: (1) after a hello that did not come, the one round trip that tells a dead link from a hung
agent also counted the liveness watch's check under way as unanswered once it had waited 2 s, though its own bound
is far longer: on a busy controller a healthy node was closed and said lost (`refused`, the network path's hint)
instead of `the agent did not say hello`. (2) a session that failed to open at once on a live transport was closed
and said `no answer within 30 s` (the time allowed, not the time waited). A real sshd behind a relay; paramiko is
not mocked.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from relays import Relay, relayed_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from stand_in_agent import hanging_zipapp
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.transport.hints import SILENT_LINK
from factoryctl.transport.ssh_node import SshTransport

#: How long a test waits for what should end in seconds (its own timeout, never the behaviour's measure).
TEST_WAIT_S = 120
#: The hello's wait: long enough for the watch's check to have waited well past 2 s before it ends (the agent runs
#: within 0.3 s and the check has waited 3 s about 3.5 s in; 8 s leaves 4.5 s for a loaded machine).
HELLO_TIMEOUT_S = 8


class HoldingRelay(Relay):
    """Holds the server's bytes back while `flowing` is clear; once `armed`, the client's next bytes let them go.

    A link that is slow to answer (a starved controller, a congested path), not one that is down: what it held
    arrives as soon as the client asks something new.
    """

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.flowing = threading.Event()
        self.flowing.set()
        self.armed = threading.Event()

    def forward(self, data: bytes, from_client: bool) -> bool:
        if from_client and self.armed.is_set():
            self.flowing.set()
        if not from_client:
            self.flowing.wait(TEST_WAIT_S)
        return True


class EofKeepingRelay(Relay):
    """Never passes the client's end of writing on: the client's transport stays up, its sends fail at once."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.done = threading.Event()

    def hung_up_from(self, from_client: bool) -> None:
        if from_client:
            self.done.wait(TEST_WAIT_S)


@pytest.fixture
def hanging_agent(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    with hanging_zipapp(tmp_path) as agent:
        yield agent


def test_a_watch_check_slow_for_2s_does_not_make_a_hung_agent_a_lost_link(sshd, tmp_path, hanging_agent):  # noqa: F811
    """The watch's check has waited well past 2 s (its bound is 30 s); the round trip after the hello is answered."""
    relay = HoldingRelay(sshd.port)
    zipapp, started = hanging_agent
    with relayed_node(relay, sshd, tmp_path, "n1") as node:
        # paramiko's own keepalive far off, so the client sends nothing of its own while the server's bytes are held
        transport = SshTransport.open(node, "lab", replace(PATIENT, keepalive_s=600))
        transport.connection.watch(interval=0.5)  # bound: answer_bound() (30 s)
        outcome: dict[str, Any] = {}

        def start() -> None:
            try:
                outcome["session"] = transport.start_agent(HELLO_TIMEOUT_S, zipapp=zipapp)
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        try:
            wait_for(started.exists, TEST_WAIT_S, "the agent's start")
            relay.flowing.clear()
            watched = transport.connection._watched
            assert watched is not None
            wait_for(lambda: watched.unanswered_for() >= 3, TEST_WAIT_S, "the watch's check to wait 3 s")
            relay.armed.set()  # the round trip after the hello's wait lets the held answers through
            thread.join(TEST_WAIT_S)
            assert not thread.is_alive()
        finally:
            relay.flowing.set()
            transport.close()
    error = outcome.get("error")
    assert isinstance(error, NodeError), outcome
    assert (error.kind, error.message) == ("timeout", f"the agent did not say hello within {HELLO_TIMEOUT_S} s.")


def test_a_session_that_fails_at_once_on_a_live_transport_is_not_called_silent(sshd, tmp_path):  # noqa: F811
    relay = EofKeepingRelay(sshd.port)
    with relayed_node(relay, sshd, tmp_path, "n1") as node:
        transport = SshTransport.open(node, "lab", PATIENT)  # the channel timeout (30 s) reaches the watch's bound
        connection = transport.connection
        try:
            connection.transport.sock.shutdown(socket.SHUT_WR)  # a send now fails at once; the transport is up
            with pytest.raises(NodeError) as raised:
                connection.channel()
            assert connection.silent_for is None
        finally:
            relay.done.set()
            transport.close()
    assert raised.value.kind == "refused"
    assert SILENT_LINK not in raised.value.message
    assert "no answer within" not in raised.value.message
