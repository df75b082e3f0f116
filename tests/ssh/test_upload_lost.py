"""A link that goes silent while the agent is uploaded is a lost connection, not the node's disk.

Found in review (session 23, `relay_repro.py gpus`): the SFTP upload's socket timeout (whose text is empty) was said
`n1: cannot upload the agent to .../factoryctl-agent-....pyz: ` with the hint to check free space on the node
(exit 1), after 31 s of `gpus --timeout 15`: each SFTP step waited the whole timeout on its own. A real sshd behind a
relay that drops every byte both ways (sockets open: a link gone down) once the upload is under way.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from relays import Relay, relayed_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the fixture

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.agent_cache import ship_agent
from factoryctl.transport.hints import SILENT_LINK_HINT, node_error_hint
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_config import resolve

#: The upload's --timeout: short, since the link is cut for good; nothing here is timed.
TIMEOUT_S = 2.0


class SilentAfter(Relay):
    """Forwards to sshd until `limit` bytes came from the client, then drops every byte both ways, sockets open."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.limit: int | None = None
        self.sent = 0
        self.silent = threading.Event()

    def forward(self, data: bytes, from_client: bool) -> bool:
        if from_client:
            self.sent += len(data)
        if self.limit is not None and self.sent > self.limit:
            self.silent.set()
        return not self.silent.is_set()


def test_a_link_silent_during_the_upload_is_a_lost_connection_within_the_timeout(
    sshd: SshdServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    zipapp = tmp_path / "agent.pyz"
    zipapp.write_bytes(os.urandom(1 << 20))  # a megabyte: the link goes silent well inside it
    relay = SilentAfter(sshd.port)
    options = replace(PATIENT, keepalive_s=60)  # the liveness watch stays out of it: the upload's own bound decides
    with relayed_node(relay, sshd, tmp_path, "n1") as node:
        connection = SshConnection.open("n1", resolve(node, options.ssh_config), options)
        try:
            relay.limit = relay.sent + 200_000  # past the login probe and the cache checks: during the file's bytes
            with pytest.raises(NodeError) as caught:
                ship_agent(connection, zipapp, str(tmp_path / "remote-cache"), TIMEOUT_S)
        finally:
            connection.close()
    assert relay.silent.is_set()
    error = caught.value
    assert (error.node, error.kind, error.exit_code) == ("n1", "refused", ExitCode.CONNECTION), error.message
    assert error.message.startswith("connection lost while uploading the agent: the link to the node stopped")
    assert error.hint == SILENT_LINK_HINT
    assert node_error_hint("n1", error.kind, error.message) == error.hint  # read back from a store: the same hint
