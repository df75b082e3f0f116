"""Connection failures say what happened and where: a dropped connection, an IPv6 address, a refusing jump host.

Against real sockets: a listener that drops every connection before any greeting (as sshd does at MaxStartups or
a firewall with a reset), a closed port on ::1, and a ProxyJump host whose port is closed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from silent_listener import listening

from factoryctl.cli.render import without_address
from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_config import host_port
from factoryctl.transport.ssh_pool import SshPool

FAST = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


@contextlib.contextmanager
def dropping_listener(reset: bool) -> Iterator[int]:
    """Listen on 127.0.0.1 and drop every accepted connection at once: a reset (RST) or a plain close (FIN)."""

    def drop(conn: socket.socket) -> None:
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    with listening(drop) as port:
        yield port


def _closed_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("reset", "what"), [(True, "reset"), (False, "closed")])
def test_a_connection_dropped_before_the_banner_is_a_lost_connection_said_as_such(ssh_node, reset, what):
    with dropping_listener(reset) as port, pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(port=port))
    error = caught.value
    assert error.kind == "refused"  # docs/ssh.md: a lost connection is `refused`
    assert error.exit_code == ExitCode.CONNECTION
    assert error.message == f"127.0.0.1:{port} {what} the connection before the SSH greeting"
    assert "()" not in error.message
    assert "sshd" in (error.hint or "")


def test_an_ipv6_address_is_written_in_brackets(ssh_node):
    port = _closed_port(socket.AF_INET6, "::1")
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(host="::1", port=port))
    assert caught.value.kind == "refused"
    assert caught.value.message == f"[::1]:{port} refused the connection"
    assert without_address(caught.value.message) == "refused the connection"  # folds like an IPv4 node


def test_host_port():
    assert host_port("::1", 9) == "[::1]:9"
    assert host_port("fe80::1%eth0", 22) == "[fe80::1%eth0]:22"
    assert host_port("gpu01", 2222) == "gpu01:2222"
    assert host_port("10.0.0.1", 22) == "10.0.0.1:22"


def test_a_refusing_jump_host_is_named_in_the_hint(cli, isolated_home: Path, sshd, known_hosts, tmp_path):
    port = _closed_port(socket.AF_INET, "127.0.0.1")
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(f"Host behind\n  HostName 127.0.0.1\n  ProxyJump root@127.0.0.1:{port}\n")
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: lab\nssh: {{known_hosts: {known_hosts}}}\nnodes:\n  n1: {{host: behind}}\n")
    r = cli("--config", str(config), "gpus", "n1")
    assert r.exit_code == 4, r.stderr
    assert f"n1: jump host root@127.0.0.1:{port}: 127.0.0.1:{port} refused the connection" in r.stderr
    hints = [line for line in r.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [f"hint: is sshd running on the jump host 127.0.0.1:{port} (ProxyJump in ~/.ssh/config)?"]
