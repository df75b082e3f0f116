"""`power set` and `power reset` say a TCP connect timeout as the node said it, with the connect timeout's hint.

They said `reading the node's GPUs before the change timed out (no answer from ...)` (set) and `starting the agent
for the change timed out (...)` (reset) although no agent had started and no GPU was read, with the hint to raise
--timeout, which does not bound a connect (ssh.connect_timeout_s does); and then `factoryctl: no power limit was
changed.` after a message that had just said so. A real listener whose backlog is full: the SYN is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from full_backlog import full_backlog_port
from sshd_fixture import SshdServer


@pytest.fixture
def backlog_full() -> Iterator[int]:
    """A port whose listen backlog is full: a new connection's SYN is dropped, so connect() times out."""
    with full_backlog_port() as port:
        yield port


@pytest.mark.parametrize("command", [["set", "n1", "--watts", "250"], ["reset", "n1"]], ids=["set", "reset"])
def test_a_connect_timeout_is_said_as_such_and_names_ssh_connect_timeout_s(
    cli: Callable[..., Any], sshd: SshdServer, tmp_path: Path, backlog_full: int, command: list[str]
) -> None:
    config = tmp_path / "factory.yaml"
    ssh = f"connect_timeout_s: 1, user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {tmp_path / 'kh'}"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nssh: {{{ssh}}}\n"
        f"nodes:\n  n1: {{host: 127.0.0.1, port: {backlog_full}}}\n"
    )
    r = cli("--config", str(config), "power", *command, "--timeout", "10")
    assert r.exit_code == 124, r.stderr
    lines = r.stderr.splitlines()
    said = f"no answer from 127.0.0.1:{backlog_full} within 1 s (ssh.connect_timeout_s); no limit was changed"
    assert lines[0] == f"factoryctl: n1: {said}", lines
    [hint] = [line for line in lines if line.startswith("hint: ")]
    assert "ssh.connect_timeout_s" in hint
    assert "--timeout" not in hint
    assert "factoryctl: no power limit was changed." not in lines  # said once, by the node's message
    listed = cli("--config", str(config), "power", *command, "--timeout", "10", "-o", "json")
    [error] = json.loads(listed.stdout)["errors"]
    assert error["message"].endswith("(ssh.connect_timeout_s); no limit was changed")
