"""A command whose channel closed under it (the connection closing) is a lost connection, not a raw SSHException.

paramiko's `exec_command` raises `SSHException("Channel closed.")` when the channel closes as the command starts;
it escaped the command's error handling, and an nvidia-smi bridge stream thread died of it with a traceback (seen
in CI). A real channel on a real sshd, closed before the command is started on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from factoryctl.errors import NodeError
from factoryctl.transport.ssh import SshConnection


def test_a_command_on_a_channel_closed_under_it_is_a_lost_connection(
    connection: SshConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    chan = connection.channel()
    chan.close()  # what the connection closing does to it

    def closed_channel(timeout: Any = None) -> Any:
        return chan

    monkeypatch.setattr(connection, "channel", closed_channel)
    with pytest.raises(NodeError) as cut:
        connection.run(["true"], timeout=10)
    assert (cut.value.kind, cut.value.message) == ("refused", "connection lost while the command ran")
