"""Nodes behind one jump host open and close their tunnels at once: the shared jump connection must survive it.

A node's transport sends on its tunnel (a direct-tcpip channel on the jump connection) from its own thread while
another thread closes the node's connection. A message that left after the tunnel's CLOSE made the jump host's sshd
drop the jump connection ("data packet referred to nonexistent channel 7"), failing the other nodes behind it at
random: 4 runs in 12 of `exec all -- true` on 12 nodes (black-box review, session 11). Real sshds: one is the jump
host, the session's is the node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paramiko.common import MSG_CHANNEL_CLOSE, MSG_CHANNEL_DATA, MSG_CHANNEL_FAILURE, MSG_CHANNEL_WINDOW_ADJUST
from relays import Relay, behind_relayed_jump
from sshd_fixture import PATIENT, SshdServer

from factoryctl.errors import NodeError
from factoryctl.transport.base import CommandCut
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_pool import SshPool

NODES = 12


@dataclasses.dataclass
class Behind:
    """A pool whose nodes `behind-*` are the session sshd, reached through the jump host `jumpy` (its own sshd).

    `jumpy` is reached through a relay (`_HeldHangUp`), so a test can break the jump connection at our end only.
    """

    pool: SshPool
    jump_server: SshdServer
    node: Callable[[str], Any]

    def jump(self) -> SshConnection:
        """The pool's shared connection to the jump host."""
        spec = self.node("probe")
        target = self.pool.target(spec).jump
        assert target is not None
        return self.pool.jump(spec.name, target)

    def target_label(self, name: str) -> str:
        """How errors name the node `name`'s endpoint."""
        return self.pool.target(self.node(name)).label

    def dropped(self) -> list[str]:
        """What the jump host's sshd logged about messages on channels it no longer has."""
        log = (self.jump_server.root / "sshd.log").read_text(errors="replace")
        return [line for line in log.splitlines() if "nonexistent channel" in line]


class _HeldHangUp(Relay):
    """Forwards both ways; once our side stops sending, the jump host's sshd is told only when `let_go` is set."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.let_go = threading.Event()

    def hung_up_from(self, from_client: bool) -> None:
        if from_client:
            self.let_go.wait(60)  # the server's write end is shut after this: until then it keeps the connection


@pytest.fixture
def behind(sshd: SshdServer, sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> Iterator[Behind]:
    jump_server = sshd_factory()
    relay = _HeldHangUp(jump_server.port)
    with behind_relayed_jump(relay, sshd, jump_server, tmp_path) as (config, known_hosts, _):
        pool = SshPool(dataclasses.replace(PATIENT, ssh_config=config))
        try:
            yield Behind(pool, jump_server, lambda name: sshd.node(name, known_hosts, host="behind-1"))
        finally:
            relay.let_go.set()
            pool.close()


def _exec_and_leave(behind: Behind, name: str) -> None:
    """What `exec all` does on one node: connect through the jump host, run a quick command, close the connection."""
    spec = behind.node(name)
    assert behind.pool.connect(spec).run(["true"], timeout=60).exit_code == 0
    behind.pool.drop(spec)


def test_short_fan_outs_through_one_jump_host_all_succeed(behind):
    jump = behind.jump()
    for _ in range(8):
        errors: list[BaseException] = []

        def one(name: str, errors: list[BaseException] = errors) -> None:
            try:
                _exec_and_leave(behind, name)
            except BaseException as exc:  # collected: the assertion below shows it
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(f"n{i}",)) for i in range(1, NODES + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    assert behind.jump() is jump  # the same jump connection served every round
    assert jump.is_alive()
    assert behind.dropped() == []


class _Late:
    """The jump connection's messages, watched: the next one of `kind` leaves late (after `leaving` is set).

    The message is built; another thread closes the tunnel meanwhile: what used to leave after the tunnel's CLOSE.
    `left` is set once it went; `sent` keeps every message's type and channel, in the order they left.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, jump: SshConnection, kind: int) -> None:
        self.kind = kind
        self.leaving = threading.Event()
        self.left = threading.Event()
        self.sent: list[tuple[int, int]] = []
        self._send = jump.transport._send_user_message  # type: ignore[attr-defined]
        monkeypatch.setattr(jump.transport, "_send_user_message", self._late)

    def _late(self, message: Any) -> None:
        raw = message.asbytes()
        late = raw[0] == self.kind and not self.leaving.is_set()
        if late:
            self.leaving.set()
            time.sleep(0.5)
        if MSG_CHANNEL_WINDOW_ADJUST <= raw[0] <= MSG_CHANNEL_FAILURE:  # the channel messages: a channel id follows
            self.sent.append((raw[0], int.from_bytes(raw[1:5], "big")))
        try:
            self._send(message)
        finally:
            if late:
                self.left.set()

    def after_close(self, channel: int) -> list[int]:
        """The messages on `channel` that left after its CLOSE."""
        kinds = [kind for kind, sent_on in self.sent if sent_on == channel]
        return kinds[kinds.index(MSG_CHANNEL_CLOSE) + 1 :]


def _cut_short(node: SshConnection, argv: list[str]) -> None:
    """Run a command whose connection the test closes under it (the error that follows is expected)."""
    with contextlib.suppress(CommandCut):
        node.run(argv, timeout=60)


@pytest.mark.parametrize("kind", [MSG_CHANNEL_DATA, MSG_CHANNEL_WINDOW_ADJUST], ids=["data", "window-adjust"])
def test_a_tunnel_closed_while_a_message_on_it_is_on_its_way_keeps_the_jump_connection(behind, monkeypatch, kind):
    """The race made certain: the node's connection is closed while its transport's message to the jump is late.

    Data: a keepalive the node's transport sends; window adjust: its acknowledgement of output it read.
    """
    jump = behind.jump()
    node = behind.pool.connect(behind.node("n1"))
    tunnel = node.transport.sock.remote_chanid  # type: ignore[union-attr]
    late = _Late(monkeypatch, jump, kind)
    if kind == MSG_CHANNEL_DATA:
        busy = threading.Thread(target=node.transport.send_ignore)
    else:  # a read acknowledges the window once a tenth of it was read: 1 MB of output does it many times
        busy = threading.Thread(target=_cut_short, args=(node, ["head", "-c", "1000000", "/dev/zero"]))
    busy.start()
    assert late.leaving.wait(30)
    node.close()  # the tunnel's CLOSE: it must not overtake the late message
    busy.join(60)
    assert late.left.wait(30)
    monkeypatch.undo()
    assert late.after_close(tunnel) == []  # OpenSSH drops the connection for data there (a window adjust it logs)
    assert jump.is_alive()
    assert behind.dropped() == []
    _exec_and_leave(behind, "n2")  # the jump connection still carries new nodes
    assert behind.jump() is jump


def test_closing_a_node_whose_jump_connection_broke_is_quiet(behind):
    """A jump connection whose socket broke (paramiko's send raises a bare EOFError) does not fail a node's close.

    That close used to raise the EOFError, which reached the user as `c5: EOFError: `. The socket is broken for
    sending (shut down: a send fails with EPIPE) while the jump host's sshd, behind a relay that holds our hang-up
    back, keeps the connection open: the jump's transport is still active when the node's close sends on it.
    """
    jump = behind.jump()
    node = behind.pool.connect(behind.node("n1"))
    jump.transport.sock.shutdown(socket.SHUT_WR)  # our end of the jump connection can send no more
    assert jump.transport.is_active()  # nothing told it yet: the node's close is the first to find out
    node.close()
    assert not node.transport.is_active()


def test_a_connection_lost_while_authenticating_is_said_in_a_sentence(behind, monkeypatch):
    """paramiko's bare EOFError (the jump connection went away mid-step) used to reach the user as `EOFError: `."""
    import factoryctl.transport.ssh as ssh_module

    behind.jump()  # the jump connection is up: the node's own authentication is what fails

    def lost(*args: Any) -> None:
        raise EOFError()

    monkeypatch.setattr(ssh_module, "authenticate", lost)
    with pytest.raises(NodeError) as caught:
        behind.pool.connect(behind.node("n1"))
    assert caught.value.kind == "refused"
    assert caught.value.message.startswith(f"connection lost to {behind.target_label('n1')} (through jump host ")
    assert caught.value.hint is not None
    assert "jump host" in caught.value.hint
