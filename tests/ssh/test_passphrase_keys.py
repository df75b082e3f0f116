"""Key files that need a passphrase are skipped, and the same key loaded into ssh-agent logs in (docs/ssh.md).

paramiko 5 raises TypeError (from `cryptography`) for an encrypted key read without a passphrase; that once failed
every node with `error: agent`, even with the key in ssh-agent. Here: a real sshd, a real `ssh-agent` started by the
test, and the encrypted key given to it by `ssh-add` (the passphrase from SSH_ASKPASS), as a user does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SSH_KEYGEN, SshdServer

PASSPHRASE = "correct horse"
#: (name, ssh-keygen arguments): OpenSSH-format ed25519 and ECDSA keys, and an RSA key in the old PEM format.
KEY_KINDS = [
    ("ed25519", ["-t", "ed25519"]),
    ("ecdsa", ["-t", "ecdsa"]),
    ("rsa-pem", ["-t", "rsa", "-b", "2048", "-m", "PEM"]),
]


def _encrypted_key(path: Path, args: list[str], server: SshdServer) -> Path:
    """A key pair whose private half needs PASSPHRASE, authorized on `server`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([SSH_KEYGEN, "-q", *args, "-N", PASSPHRASE, "-C", "locked", "-f", str(path)], check=True)
    with (server.root / "authorized_keys").open("a") as out:
        out.write(path.with_suffix(".pub").read_text())
    return path


@pytest.fixture
def ssh_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """A real ssh-agent on its own socket (SSH_AUTH_SOCK points at it); call it with a key file to `ssh-add` it."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert agent.poll() is None, "ssh-agent exited at start"
        assert time.monotonic() < deadline, "ssh-agent did not make its socket within 10 s"
        time.sleep(0.02)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
    askpass.chmod(0o700)

    def add(key: Path) -> None:
        env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", str(key)], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True)

    yield add
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=10)


def _factory(path: Path, server: SshdServer, known_hosts: Path, identity_file: Path | None) -> str:
    """factory.yaml with node n1 on `server`; no identity_file means the default ~/.ssh keys."""
    key = f", identity_file: {identity_file}" if identity_file else ""
    ssh = f"connect_timeout_s: 30, user: {server.user}, known_hosts: {known_hosts}, port: {server.port}"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n1: {{host: 127.0.0.1{key}}}\n")
    return str(path)


@pytest.fixture
def server(sshd_factory: Callable[..., SshdServer]) -> SshdServer:
    """An sshd of this test's own: the test authorizes keys on it."""
    return sshd_factory()


def test_the_default_key_needing_a_passphrase_is_skipped_and_its_agent_copy_logs_in(
    cli: Any, isolated_home: Path, server: SshdServer, ssh_agent: Callable[[Path], None], tmp_path: Path
) -> None:
    key = _encrypted_key(isolated_home / ".ssh" / "id_ed25519", ["-t", "ed25519"], server)
    ssh_agent(key)
    config = _factory(tmp_path / "factory.yaml", server, server.write_known_hosts(tmp_path / "kh"), None)
    r = cli("--config", config, "exec", "n1", "--", "echo", "hi")
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr


@pytest.mark.parametrize(("kind", "args"), KEY_KINDS, ids=[k for k, _ in KEY_KINDS])
def test_an_identity_file_needing_a_passphrase_logs_in_through_ssh_agent(
    cli: Any, server: SshdServer, ssh_agent: Callable[[Path], None], tmp_path: Path, kind: str, args: list[str]
) -> None:
    key = _encrypted_key(tmp_path / "keys" / f"id_{kind}", args, server)
    ssh_agent(key)
    config = _factory(tmp_path / "factory.yaml", server, server.write_known_hosts(tmp_path / "kh"), key)
    r = cli("--config", config, "exec", "n1", "--", "echo", "hi")
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr
    check = cli("--config", config, "nodes", "check", "n1", "-o", "json")
    steps = {s["step"]: s["status"] for s in check.json()["items"][0]["steps"]}  # type: ignore[index]
    assert (steps["host_key"], steps["auth"]) == ("ok", "ok"), check.stdout


def test_without_ssh_agent_a_key_needing_a_passphrase_is_an_auth_failure_that_says_so(
    cli: Any, server: SshdServer, tmp_path: Path
) -> None:
    key = _encrypted_key(tmp_path / "keys" / "id_ed25519", ["-t", "ed25519"], server)
    config = _factory(tmp_path / "factory.yaml", server, server.write_known_hosts(tmp_path / "kh"), key)
    r = cli("--config", config, "exec", "n1", "-o", "json", "--", "echo", "hi")
    assert r.exit_code == 4, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    assert f"the key {key} needs a passphrase: load it into ssh-agent" in error["message"]
    assert f"hint: load the key into ssh-agent (`ssh-add {key}`)" in r.stderr
    assert "TypeError" not in r.stderr
    assert "--debug" not in r.stderr


def test_nodes_check_lists_the_node_whose_key_needs_a_passphrase(cli: Any, server: SshdServer, tmp_path: Path) -> None:
    key = _encrypted_key(tmp_path / "keys" / "id_ecdsa", ["-t", "ecdsa"], server)
    config = _factory(tmp_path / "factory.yaml", server, server.write_known_hosts(tmp_path / "kh"), key)
    r = cli("--config", config, "nodes", "check", "n1")
    assert r.exit_code == 4, r.stderr
    rows = {line.split()[1]: line.split()[2] for line in r.stdout.splitlines()[1:] if line.startswith("n1 ")}
    assert (rows["host_key"], rows["auth"], rows["python"]) == ("ok", "fail", "skip"), r.stdout
    assert "needs a passphrase" in r.stdout
