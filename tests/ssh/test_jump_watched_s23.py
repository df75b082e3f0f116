"""A jump host's shared connection is watched: once its link went silent it is replaced, and the nodes come back.

Only node connections were watched (from their first command or agent). The jump connection under them, shared and
kept by the pool, stayed `is_active()` after its link went down (TCP retransmits for many minutes): each node
behind it was reported lost by its own watch, and every reconnect tunnelled into the same dead jump connection
again, so a controller or a dashboard never got those nodes back until it was restarted (review, session 23).
The jump host is a real sshd behind a relay that silences the connections it carried (the link that went down);
connections made after that flow, as a link that came back does. paramiko is not mocked.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relays import Relay, behind_relayed_jump
from sshd_fixture import PATIENT, SshdServer
from waiting import wait_for

from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_pool import SshPool

#: Checked every half second, given up on after 3 s unanswered (`answer_bound`: ssh.connect_timeout_s).
WATCHED = dataclasses.replace(PATIENT, keepalive_s=0.5, connect_timeout_s=3)
#: How long a test waits for the watch (its own bound, far past the watch's seconds; never the measure).
TEST_WAIT_S = 120


class _SilencedSoFar(Relay):
    """Forwards both ways; `silence` drops every byte of the connections relayed so far, sockets open (link down).

    The pumps started later (new connections) go on forwarding: the link is back for a connection made anew.
    """

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self._muted: set[threading.Thread] = set()

    def silence(self) -> None:
        self._muted = set(self._threads)

    def forward(self, data: bytes, from_client: bool) -> bool:
        return threading.current_thread() not in self._muted

    def accepted(self) -> int:
        return len(self._threads) // 2


@dataclasses.dataclass
class Behind:
    pool: SshPool
    relay: _SilencedSoFar
    node: Callable[[str], Any]

    def jump(self) -> SshConnection:
        spec = self.node("n1")
        target = self.pool.target(spec).jump
        assert target is not None
        return self.pool.jump(spec.name, target)


@pytest.fixture
def behind(sshd: SshdServer, sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> Iterator[Behind]:
    """Nodes `behind-*` are the session's sshd, reached through the jump host `jumpy` (an sshd behind the relay)."""
    jump_server = sshd_factory()
    relay = _SilencedSoFar(jump_server.port)
    with behind_relayed_jump(relay, sshd, jump_server, tmp_path) as (config, known_hosts, _):
        pool = SshPool(dataclasses.replace(WATCHED, ssh_config=config))
        try:
            yield Behind(pool, relay, lambda name: sshd.node(name, known_hosts, host="behind-1"))
        finally:
            relay._muted = set()  # what still waits on the old connections ends with the relay's close
            pool.close()


def test_a_silent_jump_connection_is_closed_and_the_next_connect_opens_a_new_one(behind):
    spec = behind.node("n1")
    node = behind.pool.connect(spec)
    assert node.run(["true"], timeout=60).exit_code == 0  # the node's own watch runs from here
    jump = behind.jump()

    behind.relay.silence()
    wait_for(lambda: not jump.transport.is_active(), TEST_WAIT_S, "the silent jump connection closed")
    wait_for(lambda: not node.transport.is_active(), TEST_WAIT_S, "the node's connection closed")

    again = behind.pool.connect(spec)  # a controller's link reconnecting
    assert again is not node
    assert behind.jump() is not jump  # a new jump connection, over the link that is back
    assert again.run(["true"], timeout=60).exit_code == 0
    assert behind.relay.accepted() == 2
