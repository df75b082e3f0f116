"""factory.yaml's `ssh.keepalive_s` sets how often a connection's liveness is checked (OpenSSH's ServerAliveInterval).

It was hard-coded (`SshOptions.keepalive_s = 15.0`): a link that went down was found only about 30 s later, and no
setting could shorten it (CI-speed review, session 24). The setting reaches the options of every connection built
from the config (`open_ssh_transport`: commands, agents, the controller; `nodes trust`/`check`), is validated as
the other `ssh.*` seconds are (one sentence naming the range, the setting's meaning as the hint, exit 3), and its
default stays 15 s, the bound on an unanswered check derived from it. A real sshd; paramiko is not mocked.

The same review: an agent that did not say hello within --timeout, on a link that answers, was killed only after
2 s more spent waiting for an exit status that a hung agent never sends (`gpus --timeout 3` took 5 s). It is now
looked for, not waited for (`ssh_node.HUNG_STATUS_S`): the round trip that showed the link alive came after any
status sent before it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import PATIENT, SshdServer
from stand_in_agent import stand_in_zipapp
from test_agent_hang_leaves_nothing import assert_gone, hanging_python, leftovers, started  # noqa: F401 - fixture

from factoryctl.config import load_config, parse_config
from factoryctl.errors import ConfigError, ExitCode, NodeError
from factoryctl.transport import ssh_node as ssh_node_module
from factoryctl.transport.ssh_node import SshTransport, open_ssh_transport

#: The longest a hung agent's start may wait for its exit status before the kill (it waited 2 s, past --timeout).
MOST_STATUS_WAIT_S = 0.5


def _factory(server: SshdServer, tmp_path: Path, ssh_extra: str = "") -> Path:
    """A factory.yaml reaching `server` as node n1 (connect_timeout_s left at its default), plus `ssh_extra`."""
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    ssh = f"user: {server.user}, identity_file: {server.user_key}, known_hosts: {known_hosts}, port: {server.port}"
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nssh: {{{ssh}{ssh_extra}}}\nnodes:\n  n1: {{host: 127.0.0.1}}\n")
    return path


def _paramiko_keepalive(transport: Any) -> int:
    """The keepalive interval paramiko's transport thread runs with (no public getter)."""
    return int(transport.connection.transport.packetizer._Packetizer__keepalive_interval)


def test_the_default_is_a_check_every_15_s_unanswered_for_15_s(sshd: SshdServer, tmp_path: Path) -> None:
    """The defaults slow tests skip: 15 s between checks, and a check unanswered for 15 s (above connect's 10 s)."""
    config = load_config(_factory(sshd, tmp_path))
    assert config.settings.ssh.keepalive_s == 15.0
    transport = open_ssh_transport(config.nodes["n1"], config, 600)
    try:
        assert transport.options.keepalive_s == 15.0
        assert transport.connection.answer_bound() == 15.0  # max(keepalive 15, connect_timeout_s 10)
        assert _paramiko_keepalive(transport) == 15
    finally:
        transport.close()


def test_the_setting_reaches_the_connection_and_its_liveness_bound(sshd: SshdServer, tmp_path: Path) -> None:
    config = load_config(_factory(sshd, tmp_path, ", keepalive_s: 20, connect_timeout_s: 5"))
    transport = open_ssh_transport(config.nodes["n1"], config, 600)
    try:
        assert transport.options.keepalive_s == 20.0
        assert transport.connection.answer_bound() == 20.0  # the check's bound: max(keepalive 20, connect 5)
        assert _paramiko_keepalive(transport) == 20
    finally:
        transport.close()


def test_nodes_trust_and_check_take_the_setting_too(tmp_path: Path) -> None:
    from factoryctl.cli.nodes_trust import _options

    config = parse_config("ssh: {keepalive_s: 2.5}\nnodes:\n  n1: {}\n", tmp_path / "factory.yaml")
    assert _options(config, 30).keepalive_s == 2.5


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0", "not 0"),
        ("0.5", "not 0.5"),
        ("3601", "not 3601"),
        (".inf", "not inf"),
        ("fast", "not the text 'fast'"),
        ("true", "not True"),
    ],
)
def test_a_keepalive_out_of_range_is_one_sentence_and_a_hint_exit_3(
    cli: Callable[..., Any], tmp_path: Path, value: str, said: str
) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nssh: {{keepalive_s: {value}}}\nnodes:\n  n1: {{host: 127.0.0.1}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message
    assert message.startswith(f"{path}:2:")
    assert "`ssh.keepalive_s`: must be a finite number of seconds between 1 and 3600" in message
    assert f"3600, {said}" in message
    assert message.endswith(".")
    r = cli("--config", str(path), "config", "validate")
    assert r.exit_code == ExitCode.CONFIG == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"factoryctl: {message}"
    assert lines[1].startswith("hint: `keepalive_s`: Seconds between liveness checks of a connection (1-3600)")
    assert len(lines) == 2, r.stderr


def test_a_hung_agent_is_killed_at_its_hello_timeout_not_2_s_later(
    ssh_node: Callable[..., Any],
    tmp_path: Path,
    leftovers: list[int],  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent's exit status is looked for, not waited for: the old code waited 2 s for it before the kill."""
    waits: list[float] = []
    exit_status = ssh_node_module._exit_status

    def noting_the_wait(chan: Any, timeout: float) -> int | None:
        waits.append(timeout)
        return exit_status(chan, timeout)

    monkeypatch.setattr(ssh_node_module, "_exit_status", noting_the_wait)
    script, pids = hanging_python(tmp_path)
    transport = SshTransport.open(ssh_node("n1", python=str(script)), "lab", PATIENT)
    try:
        with pytest.raises(NodeError) as failed:
            transport.start_agent(1, zipapp=stand_in_zipapp(tmp_path, "pass\n"))
        assert (failed.value.kind, failed.value.message) == ("timeout", "the agent did not say hello within 1 s.")
        assert waits, "no exit status looked for"
        assert waits[0] < MOST_STATUS_WAIT_S, waits  # the agent's (then the kill's own): was 2.0, past --timeout
        assert_gone(*started(pids, leftovers))  # killed all the same, with what it started
    finally:
        transport.close()
