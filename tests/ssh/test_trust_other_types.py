"""`nodes trust` records a key of a type not recorded for a host with other types recorded only with `--replace`.

Against real sshds (paramiko is not mocked). The session sshd has an ed25519 host key only; known_hosts records an
ECDSA key for its `[host]:port`. That is what a man in the middle who offers only a type you never recorded looks
like, so it must not pass as a brand-new host: before, `trust --yes` recorded it and a `nodes trust all --yes`
script let the interceptor in. As OpenSSH warns, it is shown as such and needs `--replace` (which, keys being
compared per type, adds the key and keeps the recorded ones).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer, keygen

ECDSA_TYPE = "ecdsa-sha2-nistp256"
WARNING = "keys of other types are already recorded for this host: if the node did not drop them, someone may be"


@pytest.fixture
def ecdsa_recorded(sshd: SshdServer, tmp_path: Path) -> tuple[Path, str]:
    """known_hosts holding a comment and an ECDSA key (no server's) for the session sshd: (file, its text)."""
    pub = keygen(tmp_path / "recorded_ecdsa", "ecdsa").with_suffix(".pub")
    key_type, blob = pub.read_text().split()[:2]
    assert key_type == ECDSA_TYPE
    known = tmp_path / "kh"
    text = f"# mine\n[{sshd.host}]:{sshd.port} {key_type} {blob}\n"
    known.write_text(text)
    return known, text


def _config(sshd: SshdServer, tmp_path: Path, known: Path) -> str:
    return sshd.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: 127.0.0.1}\n")


def test_yes_alone_refuses_and_writes_nothing(cli: Any, sshd: SshdServer, tmp_path: Path, ecdsa_recorded) -> None:
    known, text = ecdsa_recorded
    config = _config(sshd, tmp_path, known)
    result = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert result.exit_code == 4, result.stderr
    assert known.read_text() == text
    row = next(line for line in result.stdout.splitlines() if line.startswith("n1 "))
    assert row.split()[2] == "ssh-ed25519"
    assert row.endswith(f"unknown ({ECDSA_TYPE} recorded)")
    assert "recorded 1 host key" not in result.stderr
    assert f"keys of other types are recorded for it ({ECDSA_TYPE})" in result.stderr
    assert WARNING in result.stderr
    assert "rerun with --replace (it adds the key and keeps the recorded ones)" in result.stderr


def test_json_names_the_other_types_and_the_refusal(cli: Any, sshd: SshdServer, tmp_path: Path, ecdsa_recorded) -> None:
    known, text = ecdsa_recorded
    result = cli("--config", _config(sshd, tmp_path, known), "nodes", "trust", "n1", "--yes", "-o", "json")
    assert result.exit_code == 4, result.stderr
    document = result.json()
    [item] = document["items"]
    assert (item["key_type"], item["status"], item["recorded"]) == ("ssh-ed25519", "unknown", False)
    assert (item["recorded_fingerprints"], item["other_types_recorded"]) == ([], [ECDSA_TYPE])
    [error] = document["errors"]
    assert (error["node"], error["error"]) == ("n1", "host_key")
    assert known.read_text() == text


def test_replace_yes_adds_the_key_and_keeps_the_ecdsa_line(
    cli: Any, sshd: SshdServer, tmp_path: Path, ecdsa_recorded
) -> None:
    known, text = ecdsa_recorded
    config = _config(sshd, tmp_path, known)
    result = cli("--config", config, "nodes", "trust", "n1", "--yes", "--replace", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [item] = result.json()["items"]
    assert (item["status"], item["recorded"], item["other_types_recorded"]) == ("trusted", True, [ECDSA_TYPE])
    assert known.read_text() == text + sshd.host_key_line + "\n"
    assert cli("--config", config, "exec", "n1", "--", "true").exit_code == 0


def test_the_prompt_warns_as_openssh_does(cli: Any, sshd: SshdServer, tmp_path: Path, ecdsa_recorded) -> None:
    known, text = ecdsa_recorded
    config = _config(sshd, tmp_path, known)
    declined = cli("--config", config, "nodes", "trust", "n1", "--replace", stdin="n\n", tty=True)
    assert declined.exit_code == 4
    assert f"unknown ({ECDSA_TYPE} recorded)" in declined.stdout
    warning, question = declined.stderr.splitlines()[:2]
    assert warning.startswith(f"WARNING: [{sshd.host}]:{sshd.port} offers ssh-ed25519 SHA256:")
    assert f"; recorded for it: {ECDSA_TYPE}. K{WARNING[1:]}" in warning
    assert warning.endswith(" the connection. The new key is added and they are kept.")
    assert question.startswith("Record 1 unknown host key? [y/N]: ")
    assert known.read_text() == text
    accepted = cli("--config", config, "nodes", "trust", "n1", "--replace", stdin="y\n", tty=True)
    assert accepted.exit_code == 0, accepted.stderr
    assert known.read_text() == text + sshd.host_key_line + "\n"


def test_a_new_host_is_still_recorded_with_yes_alone(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "kh"
    result = cli("--config", _config(sshd, tmp_path, known), "nodes", "trust", "n1", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [item] = result.json()["items"]
    assert (item["status"], item["other_types_recorded"]) == ("trusted", [])
    assert known.read_text() == sshd.host_key_line + "\n"


def test_a_jump_host_of_an_unrecorded_type_needs_replace_too(
    cli: Any, sshd: SshdServer, sshd_factory: Callable[..., SshdServer], isolated_home: Path, tmp_path: Path
) -> None:
    """The jump host's key goes the same way as the node's: refused with --yes alone, added with --replace."""
    jump = sshd_factory()
    (isolated_home / ".ssh").mkdir(exist_ok=True)
    (isolated_home / ".ssh" / "config").write_text(
        f"Host behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n  IdentityFile {jump.user_key}\n"
    )
    key_type, blob = keygen(tmp_path / "recorded_ecdsa", "ecdsa").with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "kh"
    text = f"[{jump.host}]:{jump.port} {key_type} {blob}\n"
    known.write_text(text)
    config = sshd.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: behind}\n")
    refused = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert refused.exit_code == 4, refused.stderr
    row = next(line for line in refused.stdout.splitlines() if line.startswith("jump host of n1 "))
    assert row.split()[4] == f"[{jump.host}]:{jump.port}"
    assert row.endswith(f"unknown ({ECDSA_TYPE} recorded)")
    assert WARNING in refused.stderr
    assert known.read_text() == text
    result = cli("--config", config, "nodes", "trust", "n1", "--yes", "--replace")
    assert result.exit_code == 0, result.stderr
    assert known.read_text() == text + jump.host_key_line + "\n" + sshd.host_key_line + "\n"


# the dns hint names ~/.ssh/config's HostName too: ssh resolves that one when it is set


def test_the_dns_hint_names_the_hostname_of_ssh_config(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    config = sshd.write_factory(tmp_path / "factory.yaml", tmp_path / "kh", "  n1: {host: no-such-node.invalid}\n")
    hint = "(and its HostName in ~/.ssh/config, if it has one)"
    for command in (["exec", "n1", "--", "true"], ["nodes", "check", "n1"]):
        result = cli("--config", config, *command)
        assert result.exit_code != 0
        assert hint in result.stdout + result.stderr, command
