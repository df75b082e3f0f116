"""An authenticated connection's transport thread sleeps up to `IDLE_WAKE_S` (paramiko wakes it ten times a second).

What paramiko did at those wakes must stay prompt: the close (the thread and the peer learn of it at once, not at the
next wake), and keepalives on a quiet line. A relay between paramiko and the real sshd shows what reaches the peer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from relays import Relay, relayed_node
from sshd_fixture import PATIENT, SshdServer

from factoryctl.transport import ssh_idle
from factoryctl.transport.ssh_pool import SshPool


class CountingRelay(Relay):
    """Forwards each accepted connection to sshd; counts the bytes the client sends and notes when it hangs up."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.sent = 0
        self.more_sent = threading.Condition()
        self.hung_up = threading.Event()

    def forward(self, data: bytes, from_client: bool) -> bool:
        if from_client:
            with self.more_sent:
                self.sent += len(data)
                self.more_sent.notify_all()
        return True

    def hung_up_from(self, from_client: bool) -> None:
        if from_client:
            self.hung_up.set()

    def wait_for_more_than(self, count: int, timeout: float) -> bool:
        """Whether the client sent more than `count` bytes in all within `timeout` s."""
        with self.more_sent:
            return self.more_sent.wait_for(lambda: self.sent > count, timeout)


@pytest.fixture
def relayed(sshd: SshdServer, tmp_path: Path) -> Iterator[tuple[CountingRelay, object]]:
    """A relay to the session sshd, and a NodeSpec that reaches sshd through it (its host key trusted there)."""
    relay = CountingRelay(sshd.port)
    with relayed_node(relay, sshd, tmp_path, "relayed") as node:
        yield relay, node


def test_an_authenticated_transport_wakes_once_a_second_not_ten_times(ssh_node):
    pool = SshPool(PATIENT)
    connection = pool.connect(ssh_node())
    try:
        assert connection.transport.sock.gettimeout() == ssh_idle.IDLE_WAKE_S > 0.1
        assert connection.run(["echo", "ok"], timeout=60).stdout == b"ok\n"
    finally:
        pool.close()


def test_close_ends_the_transport_thread_and_tells_the_peer_at_once(relayed, monkeypatch):
    """Even a thread asleep for an hour in its read: the close wakes it, and the peer sees the hang-up."""
    relay, spec = relayed
    monkeypatch.setattr(ssh_idle, "IDLE_WAKE_S", 3600.0)
    pool = SshPool(PATIENT)
    connection = pool.connect(spec)
    transport = connection.transport
    assert transport.sock.gettimeout() == 3600.0
    # a round trip: what sshd sends after authentication (its host keys) has been read, so nothing more will arrive
    assert connection.run(["true"], timeout=60).exit_code == 0
    pool.close()
    transport.join(30)  # bounded: before the fix the thread slept out its hour
    assert not transport.is_alive()
    assert relay.hung_up.wait(30)


def test_a_quiet_connection_still_sends_keepalives(relayed):
    """paramiko sends a keepalive from a wake that finds the line quiet for the interval (1 s here)."""
    relay, spec = relayed
    pool = SshPool(replace(PATIENT, keepalive_s=1))
    try:
        pool.connect(spec)
        with relay.more_sent:
            before = relay.sent
        assert relay.wait_for_more_than(before, 30)  # nothing else is sent on a quiet connection
        with relay.more_sent:
            before = relay.sent
        assert relay.wait_for_more_than(before, 30)  # and again: keepalives go on
    finally:
        pool.close()
