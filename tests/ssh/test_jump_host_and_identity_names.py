"""Session 15's SSH review, ~/.ssh/config and jump hosts, against a real sshd.

A missing `IdentityFile` of ~/.ssh/config was dropped without a word, so a refusal said "no identity file and no
ssh-agent keys" although docs/ssh.md promises each skipped file named with its reason; its `%n` (the host as given,
which OpenSSH expands) was left as it was. A silent jump host was named, but the hint sent the operator to the
node's sshd.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from silent_listener import silent_listener
from sshd_fixture import SshdServer
from user_ssh_config import write_user_ssh_config


def _factory(path: Path, sshd: SshdServer, known_hosts: Path, host: str, connect_timeout: float = 30) -> str:
    """A factory.yaml with node `n1` at `host` and no identity file of its own (~/.ssh/config names it)."""
    ssh = f"connect_timeout_s: {connect_timeout:g}, user: {sshd.user}, known_hosts: {known_hosts}"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n1: {{host: {host}}}\n")
    return str(path)


def test_a_missing_identity_file_of_the_ssh_config_is_named(
    cli: Any, isolated_home: Path, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "keys" / "gone_key"
    write_user_ssh_config(
        isolated_home, f"Host gpu1\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {missing}\n"
    )
    r = cli("--config", _factory(tmp_path / "factory.yaml", sshd, known_hosts, "gpu1"), "exec", "n1", "--", "true")
    assert r.exit_code != 0
    assert f"(no identity file {missing})" in r.stderr, r.stderr


def test_percent_n_in_identity_file_is_the_host_as_given(
    cli: Any, isolated_home: Path, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(sshd.user_key, keys / "gpu1_key")
    (keys / "gpu1_key").chmod(0o600)
    write_user_ssh_config(
        isolated_home, f"Host gpu*\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {keys}/%n_key\n"
    )
    r = cli(
        "--config", _factory(tmp_path / "factory.yaml", sshd, known_hosts, "gpu1"), "exec", "n1", "--", "echo", "in"
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout.endswith("in\n")


def test_a_silent_jump_host_gets_a_hint_about_the_jump_host(
    cli: Any, isolated_home: Path, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    with silent_listener() as port:
        write_user_ssh_config(
            isolated_home,
            f"Host behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {sshd.user_key}\n"
            f"  ProxyJump jumpy\n\nHost jumpy\n  HostName 127.0.0.1\n  Port {port}\n  User {sshd.user}\n"
            f"  IdentityFile {sshd.user_key}\n",
        )
        config = _factory(tmp_path / "factory.yaml", sshd, known_hosts, "behind", connect_timeout=1)
        r = cli("--config", config, "exec", "n1", "--timeout", "5", "--", "true")
    assert r.exit_code != 0
    assert f"jump host {sshd.user}@127.0.0.1:{port}: 127.0.0.1:{port} sent no SSH banner" in r.stderr, r.stderr
    hint = r.stderr.split("hint: ", 1)[1]
    assert "the node" not in hint
    assert f"port {port} of the jump host 127.0.0.1:{port} (ProxyJump in ~/.ssh/config)" in hint, hint
