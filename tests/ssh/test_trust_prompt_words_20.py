"""`nodes trust` asks about the keys it will record, by kind, and says first which keys it will not record.

It asked "Record 8 host key(s) shown as unknown/changed above?" when the 8 were only the unknown keys: a changed key
is not recorded without --replace, and its HOST KEY CHANGED error came only after the answer. Against a real
OpenSSH sshd on 127.0.0.1 (tests/sshd_fixture.py), reached as 127.0.0.1 and as localhost: two addresses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from sshd_fixture import SSH_KEYGEN, SshdServer


def _known_hosts_with_another_key_for_localhost(sshd: SshdServer, tmp_path: Path) -> Path:
    """A known_hosts recording another ed25519 key for [localhost]:port: that address now presents a changed key."""
    other = tmp_path / "other"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "kh"
    known.write_text(f"[localhost]:{sshd.port} {kind} {blob}\n")
    return known


NODES = "  n1: {host: 127.0.0.1}\n  n2: {host: localhost}\n"


def test_a_changed_key_is_named_before_the_question_that_counts_only_unknown_keys(
    cli: Any, sshd: SshdServer, tmp_path: Path
) -> None:
    config = sshd.write_factory(tmp_path / "f.yaml", _known_hosts_with_another_key_for_localhost(sshd, tmp_path), NODES)
    result = cli("--config", config, "nodes", "trust", "all", stdin="n\n", tty=True)
    assert result.exit_code == 4
    assert (
        "Not recorded without --replace (errors below): the CHANGED host key of n2.\nRecord 1 unknown host key? [y/N]: "
    ) in result.stderr, result.stderr
    assert "unknown/changed" not in result.stderr


def test_with_replace_the_question_counts_each_kind(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    config = sshd.write_factory(tmp_path / "f.yaml", _known_hosts_with_another_key_for_localhost(sshd, tmp_path), NODES)
    result = cli("--config", config, "nodes", "trust", "all", "--replace", stdin="n\n", tty=True)
    assert result.exit_code == 4
    question = "Record 2 host keys (1 unknown, 1 changed), removing the 1 recorded key they replace? [y/N]: "
    assert question in result.stderr, result.stderr
    assert "Not recorded without --replace" not in result.stderr


def test_unknown_keys_are_counted_in_plain_plural(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    config = sshd.write_factory(tmp_path / "f.yaml", tmp_path / "kh", NODES)
    result = cli("--config", config, "nodes", "trust", "all", stdin="n\n", tty=True)
    assert result.stderr.startswith("Record 2 unknown host keys? [y/N]: "), result.stderr
    assert "Not recorded without --replace" not in result.stderr
