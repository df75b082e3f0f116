"""Out of file descriptors on this machine is this machine's `local` error at every SSH step, never the node's.

At `ulimit -n 256` with 200 SSH nodes at once, some nodes said so, others were blamed: "connection lost while the
command ran" (paramiko's pipe to wait on a channel could not be made) and "refused authentication (cannot load
id_ed25519: [Errno 24] Too many open files)", with hints to check sshd and authorized_keys.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from typing import Any

import pytest
from sshd_fixture import PATIENT

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.fanout import as_node_error
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_handshake import (
    authenticate,
    read_known_hosts,
    start_transport,
    tcp_socket,
    verify_host_key,
)
from factoryctl.transport.ssh_pool import SshPool

LOCAL_WORDS = "this machine has no file descriptor left for another connection"


@contextlib.contextmanager
def no_descriptor_left() -> Iterator[None]:
    """Every descriptor this process may open is taken (a low soft limit, filled) until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    held: list[int] = []
    try:
        with pytest.raises(OSError, match="Too many open files"):  # noqa: PT012 - filled until it says so
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def assert_local(error: NodeError) -> None:
    assert (error.kind, error.exit_code) == ("local", ExitCode.FAILURE), error
    assert LOCAL_WORDS in error.message
    assert "--fanout" in (error.hint or "")


@pytest.mark.usefixtures("no_ssh_agent")
def test_a_key_file_that_cannot_be_opened_for_want_of_descriptors_is_no_refused_key(ssh_node: Any) -> None:
    node = ssh_node()
    target = resolve(node)
    known = read_known_hosts(target)
    transport = start_transport(node.name, target, tcp_socket(node.name, target, 30), PATIENT, known)
    try:
        verify_host_key(node.name, transport, target, known)
        with no_descriptor_left(), pytest.raises(Exception) as caught:
            authenticate(node.name, transport, target)
    finally:
        transport.close()
    assert_local(as_node_error(node.name, caught.value))  # how the fan-out reports a node's failure


def test_a_command_whose_channel_cannot_be_waited_on_did_not_lose_its_connection(
    connection: SshConnection,
) -> None:
    with no_descriptor_left(), pytest.raises(NodeError) as caught:
        connection.run(["true"], timeout=60)
    assert_local(caught.value)
    assert connection.run(["echo", "still here"], timeout=60).stdout == b"still here\n"  # the connection was fine


@pytest.mark.usefixtures("no_ssh_agent")
def test_a_connection_opened_without_descriptors_is_local(ssh_node: Any) -> None:
    pool = SshPool(PATIENT)
    try:
        with no_descriptor_left(), pytest.raises(Exception) as caught:
            pool.connect(ssh_node())
    finally:
        pool.close()
    assert_local(as_node_error("n1", caught.value))
