"""A node that does not answer authentication is a timeout naming ssh.connect_timeout_s, not a refused key.

paramiko says "Authentication timeout." when no answer comes within its auth timeout, and `_try_key` took every
failure for a refusal: a link that went silent after the handshake (`relay_repro.py hello:0.25`) was `n1:
root@127.0.0.1:53397 refused authentication (tried .../id_ed25519)` with the hint to fix keys and authorized_keys,
after one full timeout per key offered. The server refused nothing. Two ways a real sshd gives no answer: the link
to it goes silent once the host key is checked (a relay that drops every byte, sockets open), and sshd itself
hangs in its key lookup (an AuthorizedKeysCommand that never ends, as a stuck LDAP or NSS lookup does).

The key exchange before it is bounded by twice ssh.connect_timeout_s (`HANDSHAKE_TIMEOUTS`: it costs CPU on both
ends), which its message now says: it said `within 10 s` for `connect_timeout_s: 5`, while docs/ssh.md said every
step was bounded by the setting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from relays import Relay, relayed_node, silencing_node
from sshd_fixture import PATIENT, SshdServer, sshd, sshd_factory  # noqa: F401 - the fixtures

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.hints import AUTH_UNANSWERED_HINT, node_error_hint
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_handshake import (
    authenticate,
    read_known_hosts,
    start_transport,
    tcp_socket,
    verify_host_key,
)

#: Short, so a test waits one second per unanswered key; nothing here is timed.
QUICK = replace(PATIENT, auth_timeout_s=1.0)


def _assert_unanswered(error: NodeError, label: str) -> None:
    assert (error.node, error.kind, error.exit_code) == ("n1", "timeout", ExitCode.TIMEOUT), error.message
    assert error.message == f"no answer from {label} to authentication within 1 s (ssh.connect_timeout_s)"
    assert "refused" not in error.message
    assert error.hint == AUTH_UNANSWERED_HINT
    assert node_error_hint("n1", error.kind, error.message) == error.hint  # read back from a store: the same hint


def test_a_link_silent_during_authentication_is_a_timeout_not_a_refusal(
    sshd: SshdServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with silencing_node(sshd, tmp_path) as (relay, node):  # a link gone down once `silent` is set
        target = resolve(node, QUICK.ssh_config)
        known = read_known_hosts(target)
        transport = start_transport("n1", target, tcp_socket("n1", target, 10), QUICK, known)
        verify_host_key("n1", transport, target, known)
        relay.silent.set()  # the handshake is done; nothing of authentication gets through
        with pytest.raises(NodeError) as caught:
            authenticate("n1", transport, target)
    _assert_unanswered(caught.value, target.label)
    assert not transport.is_active()  # given up on, not left open


def test_an_sshd_hung_in_its_key_lookup_is_a_timeout_not_a_refusal(
    sshd_factory: Callable[..., SshdServer],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    server = sshd_factory(
        extra_config='AuthorizedKeysCommand /bin/sh -c "exec sleep 10"\nAuthorizedKeysCommandUser root\n'
    )
    (server.root / "authorized_keys").write_text("")  # so the command is asked: the file does not have our key
    node = server.node("n1", server.write_known_hosts(tmp_path / "known_hosts"))
    target = resolve(node, QUICK.ssh_config)
    with pytest.raises(NodeError) as caught:
        SshConnection.open("n1", target, QUICK).close()
    _assert_unanswered(caught.value, target.label)


class SilentAfterKexinit(Relay):
    """Forwards until the server's first packet after its banner (KEXINIT) has passed, then drops every byte both ways.

    paramiko's own handshake timer ends once that packet is read: what bounds the rest of the key exchange is ours.
    """

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.silent = threading.Event()
        self._said = b""

    def forward(self, data: bytes, from_client: bool) -> bool:
        if self.silent.is_set():
            return False
        if not from_client:
            self._said += data
            banner_end = self._said.find(b"\n") + 1
            rest = self._said[banner_end:] if banner_end else b""
            if len(rest) >= 4 and len(rest) >= 4 + int.from_bytes(rest[:4], "big"):
                self.silent.set()  # this chunk, which ends the KEXINIT, still passes
        return True


def test_a_key_exchange_cut_midway_names_its_bound(
    sshd: SshdServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    options = replace(PATIENT, banner_timeout_s=1.0)
    relay = SilentAfterKexinit(sshd.port)
    with relayed_node(relay, sshd, tmp_path, "n1") as node:
        target = resolve(node, options.ssh_config)
        with pytest.raises(NodeError) as caught:
            start_transport("n1", target, tcp_socket("n1", target, 10), options, read_known_hosts(target))
    assert relay.silent.is_set()
    error = caught.value
    assert (error.kind, error.exit_code) == ("banner", ExitCode.CONNECTION)
    assert error.message == (
        f"{target.address} did not finish the SSH handshake within 2 s, twice ssh.connect_timeout_s "
        "(its sshd may be hung or overloaded)"
    )
