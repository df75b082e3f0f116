"""Which keys are offered, and in which order, against a real sshd with a low MaxAuthTries and a real ssh-agent.

sshd drops the connection once MaxAuthTries keys were refused ("Too many authentication failures"). An agent with
several keys offered before the configured IdentityFile's own copy (a key that needs a passphrase, loaded into the
agent) used to fail every node so: now that copy goes first, as with ssh. `IdentitiesOnly yes` in ~/.ssh/config
offers the IdentityFile keys only (through the agent too), never the agent's others, as ssh does.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SSH_KEYGEN, SshdServer, keygen
from test_passphrase_keys import _encrypted_key, ssh_agent  # noqa: F401 - the fixture, used by name

from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve

#: How the IdentityFile's public key is found: an OpenSSH-format key's clear header (no .pub beside it), a PEM key's
#: .pub (PEM keeps none in the clear), and an IdentityFile that is the public key itself.
PUBLIC_KEY_SOURCES = [
    ("openssh-header", ["-t", "ed25519"], "drop .pub"),
    ("pem-with-pub", ["-t", "rsa", "-b", "2048", "-m", "PEM"], "keep .pub"),
    ("identityfile-is-pub", ["-t", "ecdsa"], "name .pub"),
]


@pytest.fixture
def strict_server(sshd_factory: Callable[..., SshdServer]) -> SshdServer:
    """An sshd of this test's own that drops a client after two refused keys (MaxAuthTries 2)."""
    server = sshd_factory()
    config = server.root / "sshd_config"
    config.write_text(re.sub(r"MaxAuthTries \d+", "MaxAuthTries 2", config.read_text()))
    server.stop()
    server.restart()
    return server


def _wrong_keys(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [keygen(directory / f"wrong{n}") for n in range(count)]


def _fingerprint(key: Path) -> str:
    out = subprocess.run([SSH_KEYGEN, "-lf", str(key)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def _setup(home: Path, server: SshdServer, tmp_path: Path, identity_file: Path, only: str) -> str:
    """~/.ssh/config naming `identity_file` for host lab (with `IdentitiesOnly only`), and factory.yaml for it."""
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host lab\n  HostName 127.0.0.1\n  Port {server.port}\n  User {server.user}\n"
        f"  IdentityFile {identity_file}\n  IdentitiesOnly {only}\n"
    )
    known_hosts = server.write_known_hosts(tmp_path / "kh")
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nssh: {{connect_timeout_s: 30, known_hosts: {known_hosts}}}\nnodes:\n  n1: {{host: lab}}\n"
    )
    return str(factory)


@pytest.mark.parametrize("only", ["no", "yes"])
@pytest.mark.parametrize(("source", "args", "pub"), PUBLIC_KEY_SOURCES, ids=[s for s, _, _ in PUBLIC_KEY_SOURCES])
def test_the_identity_files_agent_copy_goes_before_other_agent_keys(
    cli: Any,
    isolated_home: Path,
    strict_server: SshdServer,
    ssh_agent: Callable[[Path], None],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
    only: str,
    source: str,
    args: list[str],
    pub: str,
) -> None:
    for wrong in _wrong_keys(tmp_path / "wrong", 3):  # loaded first: the agent lists them before the right key
        ssh_agent(wrong)
    key = _encrypted_key(tmp_path / "keys" / f"id_{source}", args, strict_server)
    ssh_agent(key)
    identity_file = key.with_suffix(".pub") if pub == "name .pub" else key
    if pub == "drop .pub":
        key.with_suffix(".pub").unlink()
    config = _setup(isolated_home, strict_server, tmp_path, identity_file, only)
    r = cli("--config", config, "exec", "n1", "--", "echo", "hi")
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr
    assert "Failed publickey" not in (strict_server.root / "sshd.log").read_text()  # the right key came first


def test_identities_only_offers_no_agent_key_but_the_identity_files(
    cli: Any,
    isolated_home: Path,
    strict_server: SshdServer,
    ssh_agent: Callable[[Path], None],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
) -> None:
    """The agent holds the key sshd accepts, the IdentityFile is another: ssh then fails too (Permission denied)."""
    ssh_agent(strict_server.user_key)
    [unauthorized] = _wrong_keys(tmp_path / "wrong", 1)
    config = _setup(isolated_home, strict_server, tmp_path, unauthorized, "yes")
    r = cli("--config", config, "exec", "n1", "-o", "json", "--", "echo", "hi")
    assert r.exit_code == 4, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    assert f"IdentitiesOnly yes: 1 other ssh-agent key(s) not offered; tried {unauthorized})" in error["message"]
    assert "hint: IdentitiesOnly yes in ~/.ssh/config offers only the IdentityFile keys" in r.stderr
    log = (strict_server.root / "sshd.log").read_text()
    assert _fingerprint(unauthorized) in log
    assert _fingerprint(strict_server.user_key) not in log  # never offered
    _setup(isolated_home, strict_server, tmp_path, unauthorized, "no")
    r = cli("--config", config, "exec", "n1", "--", "echo", "hi")
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr  # without it, the agent's key logs in


def test_identities_only_with_no_identity_file_and_a_locked_one_outside_the_agent_says_what_to_load(
    cli: Any,
    isolated_home: Path,
    strict_server: SshdServer,
    ssh_agent: Callable[[Path], None],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
) -> None:
    for wrong in _wrong_keys(tmp_path / "wrong", 2):
        ssh_agent(wrong)
    key = _encrypted_key(tmp_path / "keys" / "id_ed25519", ["-t", "ed25519"], strict_server)  # not in the agent
    config = _setup(isolated_home, strict_server, tmp_path, key, "yes")
    r = cli("--config", config, "exec", "n1", "-o", "json", "--", "echo", "hi")
    assert r.exit_code == 4, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["message"].endswith(
        f"(the key {key} needs a passphrase: load it into ssh-agent; IdentitiesOnly yes: 2 other ssh-agent key(s) "
        "not offered)"
    )
    assert f"hint: load the key into ssh-agent (`ssh-add {key}`)" in r.stderr


def test_an_identity_file_that_is_a_public_key_missing_from_the_agent_is_named_so(
    cli: Any, isolated_home: Path, strict_server: SshdServer, tmp_path: Path
) -> None:
    [key] = _wrong_keys(tmp_path / "keys", 1)
    config = _setup(isolated_home, strict_server, tmp_path, key.with_suffix(".pub"), "yes")
    r = cli("--config", config, "exec", "n1", "-o", "json", "--", "echo", "hi")
    assert r.exit_code == 4, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["message"].endswith(f"({key}.pub is a public key, and ssh-agent holds no private key for it)")


def test_identities_only_is_read_per_host_jump_hosts_included(isolated_home: Path) -> None:
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        "Host gpu*\n  ProxyJump bastion\nHost bastion\n  IdentitiesOnly yes\nHost *\n  IdentitiesOnly no\n"
    )
    target = resolve(NodeSpec("n1", "gpu01"))
    assert target.jump is not None
    assert (target.identities_only, target.jump.identities_only) == (False, True)
