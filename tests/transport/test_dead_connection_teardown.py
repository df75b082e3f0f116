"""Closing an agent on a connection known dead skips its `shutdown` and its kill; on a live one it stays as it was.

A connection that went silent (a relay that stops forwarding, as a network partition does) kept paramiko's transport
active until the liveness watch's check timed out, and the link's teardown meanwhile waited 1 s for an answer to
`shutdown` and up to 2 s for the kill's channel open: neither could cross, and the reconnect came 3 s late. Once the
watch's check has gone unanswered as long as a kill may take, the connection is known dead and neither is tried. A
stopped agent on a live connection is still killed. A real sshd behind a relay; what is counted is our own
connection's channel opens and our session's requests (paramiko is not mocked).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from relays import SilencingRelay, silencing_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from stand_in_agent import stand_in_zipapp
from waiting import wait_for

from factoryctl.transport import ssh_node
from factoryctl.transport.session import AgentSession
from factoryctl.transport.ssh_node import SshTransport

#: A stand-in agent: says hello with its pid (which the kill needs), answers requests, exits on `shutdown` or EOF.
AGENT = """
import json, os, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
send({"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim", "pid": os.getpid(), "gpus": 0})
for line in sys.stdin:
    req = json.loads(line)
    send({"id": req["id"], "ok": True, "result": {}})
    if req["op"] == "shutdown":
        break
"""


@pytest.fixture
def relayed(sshd: SshdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SilencingRelay, Any]]:  # noqa: F811
    """A `SilencingRelay` to the session's sshd and a NodeSpec reaching sshd through it; the agent cache in tmp."""
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with silencing_node(sshd, tmp_path) as relayed:
        yield relayed


@pytest.fixture
def agent_zipapp(tmp_path: Path) -> Path:
    return stand_in_zipapp(tmp_path, AGENT)


class Teardown:
    """An agent started through the relay, with the kill's channel opens and the session's requests counted."""

    def __init__(self, spec: Any, zipapp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transport = SshTransport.open(spec, "lab", PATIENT)
        connection = self.transport.connection
        # checked often, and a check waits long: on a silent link one stays unanswered (the watch never closes it)
        connection.watch(interval=0.1, timeout=600)
        self.session: AgentSession = self.transport.start_agent(60, zipapp=zipapp_path)
        self.agent = psutil.Process(self.session.hello_info["pid"])
        self.channel_opens: list[float | None] = []
        self.requests: list[str] = []
        monkeypatch.setattr(connection, "channel", self._counted(connection.channel, self.channel_opens))
        monkeypatch.setattr(self.session, "request", self._counted_request(self.session.request))

    @staticmethod
    def _counted(channel: Callable[..., Any], opens: list[float | None]) -> Callable[..., Any]:
        def open_channel(timeout: float | None = None) -> Any:
            opens.append(timeout)
            return channel(timeout)

        return open_channel

    def _counted_request(self, request: Callable[..., Any]) -> Callable[..., Any]:
        def counted(op: str, timeout: float = 10.0, **args: Any) -> Any:
            self.requests.append(op)
            return request(op, timeout, **args)

        return counted

    def end(self) -> None:
        """Close the transport; an agent left behind (stopped, or on the silent link) is killed here."""
        self.transport.close()
        with contextlib.suppress(psutil.NoSuchProcess):
            self.agent.kill()


@pytest.fixture
def teardown(
    relayed: tuple[SilencingRelay, Any], agent_zipapp: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Teardown]:
    agent = Teardown(relayed[1], agent_zipapp, monkeypatch)
    try:
        yield agent
    finally:
        agent.end()


def test_a_silent_connection_known_dead_is_torn_down_without_shutdown_or_kill(relayed, teardown):
    relay, _ = relayed
    connection = teardown.transport.connection
    relay.silent.set()
    wait_for(lambda: connection.known_dead(ssh_node.AGENT_KILL_TIMEOUT_S))  # the watch's check: unanswered
    assert connection.transport.is_active()  # paramiko does not know: only the watch's check tells
    assert teardown.session.failure is None

    teardown.session.close(timeout=1.0)  # as the link closes a stalled session

    assert teardown.requests == []  # no `shutdown` to wait for: it could not arrive
    assert teardown.channel_opens == []  # and no channel opened for `kill -KILL`
    assert teardown.agent.is_running()  # untouched: nothing reached the node


def test_a_stopped_agent_on_a_live_connection_is_still_asked_and_killed(teardown):
    teardown.agent.send_signal(signal.SIGSTOP)  # the agent stops answering; the connection still does

    teardown.session.close(timeout=1.0)

    assert teardown.requests == ["shutdown"]
    assert teardown.channel_opens == [ssh_node.AGENT_KILL_TIMEOUT_S]  # the kill's channel, within its bound
    wait_for(lambda: not _exists(teardown.agent))


def _exists(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_connection_is_known_dead_once_its_transport_is_down(relayed, teardown):
    connection = teardown.transport.connection
    assert not connection.known_dead(ssh_node.AGENT_KILL_TIMEOUT_S)
    connection.transport.close()
    assert connection.known_dead(ssh_node.AGENT_KILL_TIMEOUT_S)
