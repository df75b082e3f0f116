"""The SSH suite runs against a real OpenSSH sshd (tests/sshd_fixture.py); paramiko is never mocked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshd_fixture import (  # noqa: F401
    PATIENT,
    SshdServer,
    known_hosts,
    no_ssh_agent,
    ssh_node,
    sshd,
    sshd_factory,
)

from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_pool import SshPool


@pytest.fixture(autouse=True)
def remote_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The agent cache "on the node" (the same machine here) goes to a temp dir, not /root/.cache."""
    cache = tmp_path / "remote-cache"
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(cache))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return cache


@pytest.fixture
def connection(ssh_node: Any) -> Iterator[SshConnection]:  # noqa: F811 - the fixture, as a parameter
    """One real SSH connection to the session's sshd, closed after the test."""
    pool = SshPool(PATIENT)
    yield pool.connect(ssh_node())
    pool.close()
