"""A hung sshd (SIGSTOPped: the kernel still accepts its connections) is not called "not SSH".

Found by failure injection: a stopped sshd was reported as "does not speak SSH" with the hint "check that the port
is sshd's", sending the operator to the wrong fix. Silence proves neither: the message and hint name both causes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from sshd_fixture import SshdServer

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

QUICK_BANNER = SshOptions(connect_timeout_s=30, banner_timeout_s=1, auth_timeout_s=30, channel_timeout_s=30)


def test_a_stopped_sshd_is_reported_as_silent_not_as_another_server(
    sshd_factory: Callable[..., SshdServer], tmp_path: Any
) -> None:
    server = sshd_factory()
    assert server.process is not None
    known = server.write_known_hosts(tmp_path / "known_hosts")
    pool = SshPool(QUICK_BANNER)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(NodeError) as caught:
            pool.connect(server.node("hung", known))
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        pool.close()
    error = caught.value
    assert (error.kind, error.exit_code) == ("banner", ExitCode.CONNECTION)
    assert error.message == (
        f"127.0.0.1:{server.port} sent no SSH banner within 1 s (not an SSH server, or one that is hung or overloaded)"
    )
    assert error.hint is not None
    assert "sshd's" in error.hint
    assert "hung" in error.hint
