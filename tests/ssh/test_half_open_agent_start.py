"""A link that goes down while the agent starts (before its hello) is said as a lost connection, not a hung agent.

The liveness watch used to start only after the hello, and the hello's wait blamed the agent for the silence: `the
agent did not say hello within 15 s.` with the hint to run the node's python by hand (exit 124), then 4-5 s more on
an exit status and a kill that could not cross the dead link (network review, session 23). Now the watch runs from
the connection's first command, so a link that stays down past its bound ends the wait however long `--timeout`
is, and a hello that did not come is followed by one round trip (2 s at most): unanswered, the connection is closed
and said lost, the link named as having stopped answering (exit 4). An agent that hangs on a live link is still
said to hang. A real sshd behind a relay that goes silent with both sockets open; paramiko is not mocked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from relays import SilencingRelay, silencing_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from stand_in_agent import hanging_zipapp
from waiting import wait_for

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.hints import NO_HELLO, SILENT_LINK, SILENT_LINK_HINT
from factoryctl.transport.ssh_node import AGENT_KILL_TIMEOUT_S, SshTransport

#: Far beyond any test's own wait.
HUGE_TIMEOUT_S = 600
#: How long a test waits for what should end in seconds (its own timeout, never the behaviour's measure).
TEST_WAIT_S = 120


@pytest.fixture
def silencing(sshd: SshdServer, tmp_path: Path) -> Iterator[tuple[SilencingRelay, Any]]:  # noqa: F811
    with silencing_node(sshd, tmp_path) as relayed:
        yield relayed


@pytest.fixture
def hanging_agent(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The zipapp of an agent that never says hello, and the file its pid appears in once it runs (killed after)."""
    with hanging_zipapp(tmp_path) as agent:
        yield agent


def start_in_thread(transport: SshTransport, timeout: float, zipapp: Path) -> dict[str, Any]:
    """`start_agent` on a thread; the dict gets its `session` or `error` once it ends, `thread` at once."""
    outcome: dict[str, Any] = {}

    def start() -> None:
        try:
            outcome["session"] = transport.start_agent(timeout, zipapp=zipapp)
        except BaseException as exc:
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=start, daemon=True)
    outcome["thread"].start()
    return outcome


def silenced_start(relay: SilencingRelay, transport: SshTransport, timeout: float, agent: tuple[Path, Path]) -> Any:
    """Start the hanging agent, take the link down once it runs; the start's error (the test fails if it hangs on)."""
    zipapp, started = agent
    outcome = start_in_thread(transport, timeout, zipapp)
    try:
        wait_for(started.exists, TEST_WAIT_S, "the agent's start")
        relay.silent.set()
        outcome["thread"].join(TEST_WAIT_S)
        assert not outcome["thread"].is_alive(), "the agent's start still waited on a dead link"
    finally:
        transport.close()
    assert "session" not in outcome
    return outcome["error"]


def assert_lost_as_silent(error: object) -> None:
    assert isinstance(error, NodeError), error
    assert (error.kind, error.exit_code) == ("refused", ExitCode.CONNECTION)
    assert error.message.startswith(f"connection lost while starting the agent: {SILENT_LINK}"), error.message
    assert NO_HELLO not in error.message
    assert error.hint == SILENT_LINK_HINT


def test_a_hello_not_come_on_a_silent_link_is_a_lost_connection(silencing, hanging_agent):
    """The watch's bound is far off (its checks 60 s apart): the round trip after the hello's wait tells."""
    relay, node = silencing
    transport = SshTransport.open(node, "lab", replace(PATIENT, keepalive_s=60))
    error = silenced_start(relay, transport, 3, hanging_agent)
    assert_lost_as_silent(error)
    assert error.message.endswith(f"(no answer within {AGENT_KILL_TIMEOUT_S:g} s)")


def test_a_link_gone_silent_ends_the_hello_wait_long_before_its_timeout(silencing, hanging_agent):
    """Checked every second, a check unanswered for 2 s (ssh.connect_timeout_s) ends a hello wait of 600 s."""
    relay, node = silencing
    options = replace(PATIENT, keepalive_s=1, connect_timeout_s=2, channel_timeout_s=HUGE_TIMEOUT_S)
    transport = SshTransport.open(node, "lab", options)
    assert_lost_as_silent(silenced_start(relay, transport, HUGE_TIMEOUT_S, hanging_agent))


def test_an_agent_that_hangs_on_a_live_link_is_still_said_to_hang(silencing, hanging_agent):
    _, node = silencing
    transport = SshTransport.open(node, "lab", replace(PATIENT, keepalive_s=60))
    try:
        with pytest.raises(NodeError) as raised:
            transport.start_agent(2, zipapp=hanging_agent[0])
    finally:
        transport.close()
    assert (raised.value.kind, raised.value.message) == ("timeout", "the agent did not say hello within 2 s.")
