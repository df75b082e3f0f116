"""A peer that sends an SSH banner, then something that is not SSH, then closes, is said to have done so.

Found in review (session 23): a peer sending its banner, then a DISCONNECT packet of garbage, then closing, was
reported after a second as `did not finish the SSH handshake within 20 s (its sshd may be hung or overloaded)`:
paramiko's thread ends without an error on DISCONNECT, which read as a hang. It now says the peer closed the
connection during the handshake (quoting what it said, its control characters escaped on the terminal). The peers
here are the servers under test; the client is factoryctl's, through paramiko.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer, free_port

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.hints import NOT_SSH_HINT
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

#: Patient bounds: a failure said as a timeout here would be the bug, not a slow machine.
OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


def _packet(payload: bytes) -> bytes:
    """An unencrypted SSH packet of `payload`, padded as RFC 4253 asks (to 8 bytes, at least 4 of padding)."""
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 * (padding < 4)
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\0" * padding


def _disconnect(reason: bytes) -> bytes:
    """SSH_MSG_DISCONNECT (1), code 2 (protocol error), saying `reason`."""
    return _packet(b"\x01" + struct.pack(">II", 2, len(reason)) + reason + struct.pack(">I", 0))


#: The reviewer's peer (evil_banner.py): a banner, then a DISCONNECT whose garbage body holds no reason.
GARBLED = b"\x00\x00\x00\x0c\x0a\x01" + b"\x1b[2Jgarbage\x1b]0;X\x07" * 50


class BannerThenThis:
    """A TCP server that sends an SSH banner, reads the client's, sends `then`, and closes the connection."""

    def __init__(self, then: bytes) -> None:
        self.port = free_port()
        self._then = then
        self._done = threading.Event()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                    conn.recv(100000)
                    conn.sendall(self._then)
                except OSError:
                    pass

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._server.close()


@pytest.fixture
def peer() -> Iterator[list[BannerThenThis]]:
    peers: list[BannerThenThis] = []
    yield peers
    for one in peers:
        one.close()


def _connect_error(sshd: SshdServer, known_hosts: Path, server: BannerThenThis) -> NodeError:
    pool = SshPool(OPTIONS)
    try:
        with pytest.raises(NodeError) as caught:
            pool.connect(sshd.node("odd", known_hosts, port=server.port))
    finally:
        pool.close()
    return caught.value


def test_a_garbled_disconnect_after_the_banner_is_a_closed_connection_not_a_hang(
    sshd: SshdServer, known_hosts: Path, peer: list[BannerThenThis]
) -> None:
    peer.append(BannerThenThis(GARBLED))
    error = _connect_error(sshd, known_hosts, peer[0])
    assert (error.kind, error.exit_code) == ("banner", ExitCode.CONNECTION)
    assert error.message == (
        f"127.0.0.1:{peer[0].port} does not speak SSH (it closed the connection during the handshake)"
    )
    assert error.hint == NOT_SSH_HINT


def test_what_a_peer_said_as_it_closed_during_the_handshake_is_quoted(
    sshd: SshdServer, known_hosts: Path, peer: list[BannerThenThis]
) -> None:
    peer.append(BannerThenThis(_disconnect(b"go away")))
    error = _connect_error(sshd, known_hosts, peer[0])
    assert error.message == (
        f"127.0.0.1:{peer[0].port} does not speak SSH (it closed the connection during the handshake, saying: go away)"
    )


def test_a_long_farewell_is_cut_and_its_escapes_never_reach_the_terminal(
    cli: Any, sshd: SshdServer, known_hosts: Path, peer: list[BannerThenThis], tmp_path: Path
) -> None:
    peer.append(BannerThenThis(_disconnect(b"\x1b[2J\x1b]0;PWNED\x07" + b"x" * 5000)))
    factory = Path(sshd.write_factory(tmp_path / "f.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n"))
    factory.write_text(factory.read_text().replace(f"port: {sshd.port}", f"port: {peer[0].port}"))
    r = cli("--config", str(factory), "exec", "n1", "--", "true")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    assert "\x1b" not in r.stderr
    assert "did not finish" not in r.stderr
    assert "closed the connection during the handshake, saying: \\x1b[2J\\x1b]0;PWNED\\x07xxx" in r.stderr
    assert "x" * 200 not in r.stderr


def test_garbage_that_is_no_packet_after_the_banner_does_not_speak_ssh(
    sshd: SshdServer, known_hosts: Path, peer: list[BannerThenThis]
) -> None:
    peer.append(BannerThenThis(b"\xff" * 64))
    error = _connect_error(sshd, known_hosts, peer[0])
    assert error.kind == "banner"
    assert error.message.startswith(f"127.0.0.1:{peer[0].port} does not speak SSH (")
