"""A connection reset while the node checks our key is a lost connection, in one sentence, not a Python error.

paramiko keeps the socket's error (ConnectionResetError) and raises it from the step that waits on the connection:
`auth_publickey` here. It left `SshConnection.open` raw and the fan-out made it `agent`:
`ConnectionResetError: [Errno 104] Connection reset by peer`, hint `rerun with --debug for details.` (an sshd killed
under `factoryctl gpus`). A real sshd behind a relay: its AuthorizedKeysCommand marks that the check has begun and
waits, and the relay then resets the connection (RST, as a killed sshd's kernel sends).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from relays import Relay, relayed_node
from sshd_fixture import PATIENT, SshdServer, sshd_factory  # noqa: F401 - the extra-server fixture
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.transport.hints import LOST_HINT
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_config import resolve


class ResettingRelay(Relay):
    """A relay whose `reset` cuts every relayed connection with an RST (SO_LINGER 0), both ways."""

    def reset(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # Wakes its pump, blocked in recv (a close alone leaves it there, and `close` waited 10 s for it);
                # SHUT_RD sends nothing, so the peer still sees only the RST of the close.
                sock.shutdown(socket.SHUT_RD)
                sock.close()


def test_a_connection_reset_during_authentication_is_a_lost_connection(
    sshd_factory: Callable[..., SshdServer],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    checking = tmp_path / "checking"
    # sshd runs it as it checks the key (its path must be root's: /bin/sh); it never answers before the reset
    server = sshd_factory(
        extra_config=f'AuthorizedKeysCommand /bin/sh -c "touch {checking}; exec sleep 20"\n'
        "AuthorizedKeysCommandUser root\n"
    )
    (server.root / "authorized_keys").write_text("")  # so the command is asked: the file does not have our key
    relay = ResettingRelay(server.port)
    caught: list[BaseException] = []
    with relayed_node(relay, server, tmp_path, "n1") as node:
        target = resolve(node, PATIENT.ssh_config)

        def connect() -> Any:
            try:
                SshConnection.open("n1", target, PATIENT).close()
            except BaseException as exc:
                caught.append(exc)

        opening = threading.Thread(target=connect, daemon=True)
        opening.start()
        wait_for(checking.exists)  # our key is being checked: the client waits in auth_publickey
        relay.reset()
        opening.join(30)
    assert not opening.is_alive()
    [error] = caught
    assert isinstance(error, NodeError), repr(error)
    assert (error.kind, error.node) == ("refused", "n1")
    assert error.message == f"connection lost to {target.label}", error.message
    assert error.hint == LOST_HINT
