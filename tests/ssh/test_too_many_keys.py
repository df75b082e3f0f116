"""sshd closing the connection at MaxAuthTries, against a real sshd (MaxAuthTries 2) and a real ssh-agent.

The agent lists three wrong keys before the authorized one. sshd refuses two and then drops the connection ("Too
many authentication failures"); the `auth` error used to say every key was tried, the authorized one included,
though it never reached the server. Now it names the keys sent, says the server closed the connection after them,
and hints at putting the right key first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sshd_fixture import SshdServer
from test_identities_only import _fingerprint, _wrong_keys, strict_server  # noqa: F401 - the fixture, used by name
from test_passphrase_keys import ssh_agent  # noqa: F401 - the fixture, used by name


def test_keys_after_the_servers_disconnect_are_not_said_to_be_tried(
    cli: Any,
    isolated_home: Path,
    strict_server: SshdServer,  # noqa: F811 - the fixture, as a parameter
    ssh_agent: Callable[[Path], None],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
) -> None:
    wrong = _wrong_keys(tmp_path / "wrong", 3)
    for key in [*wrong, strict_server.user_key]:  # the agent lists them in this order
        ssh_agent(key)
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host lab\n  HostName 127.0.0.1\n  Port {strict_server.port}\n  User {strict_server.user}\n"
    )
    known_hosts = strict_server.write_known_hosts(tmp_path / "kh")
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\nssh: {{known_hosts: {known_hosts}}}\nnodes:\n  n1: {{host: lab}}\n")
    r = cli("--config", str(factory), "exec", "n1", "-o", "json", "--", "echo", "hi")
    assert r.exit_code == 4, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    message = error["message"]
    log = (strict_server.root / "sshd.log").read_text()
    sent = [key for key in wrong if _fingerprint(key) in log]
    assert len(sent) == 2, log  # MaxAuthTries 2: the third wrong key and the right one never reach sshd
    assert [_fingerprint(key) in message for key in [*wrong, strict_server.user_key]] == [True, True, False, False]
    assert message.endswith(
        "; then it closed the connection after 2 refused key(s): Too many authentication failures (sshd's "
        "MaxAuthTries); 2 more key(s) not offered)"
    ), message
    assert "hint: sshd closes the connection once MaxAuthTries keys were refused: offer the right key first" in r.stderr
    assert "`IdentitiesOnly yes` and its IdentityFile" in r.stderr
    assert "fewer keys in ssh-agent" in r.stderr


def test_a_paramiko_without_its_private_disconnect_parser_still_connects() -> None:
    """The server's farewell is read through paramiko's private `_parse_disconnect`; a paramiko without it (the
    dependency has no upper bound) raised AttributeError at every connection. It now only loses the reason."""
    from factoryctl.transport.ssh_handshake import _record_disconnect

    class TransportWithoutIt:
        pass

    assert _record_disconnect(TransportWithoutIt()) == []  # type: ignore[arg-type]
