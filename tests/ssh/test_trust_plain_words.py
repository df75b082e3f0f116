"""`nodes trust` says in plain words what was not recorded, and what `--replace` is about to remove.

Nodes at different addresses left unconfirmed were folded into `gpu[01-02] (2): its address: not recorded (not
confirmed).` (the address taken out of `[host]:port: not recorded` left "its address:"); the `--replace` prompt
asked the same "Record 1 host key(s) shown as unknown/changed above?" as for a new key, without saying that a
recorded key is removed. Against a real OpenSSH sshd on 127.0.0.1 (tests/sshd_fixture.py).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

from sshd_fixture import SSH_KEYGEN, SshdServer

from factoryctl.transport.known_hosts import fingerprint


def test_unconfirmed_nodes_at_two_addresses_fold_into_one_plain_line(
    cli: Any, sshd: SshdServer, tmp_path: Path
) -> None:
    known = tmp_path / "kh"
    config = sshd.write_factory(tmp_path / "f.yaml", known, "  n1: {host: 127.0.0.1}\n  n2: {host: localhost}\n")
    refused = cli("--config", config, "nodes", "trust", "n[1-2]")
    assert refused.exit_code == 4
    assert "factoryctl: n[1-2] (2): host key not recorded (not confirmed).\n" in refused.stderr, refused.stderr
    assert "its address" not in refused.stderr
    alone = cli("--config", config, "nodes", "trust", "n1")
    assert f"factoryctl: n1: [127.0.0.1]:{sshd.port} host key not recorded (not confirmed).\n" in alone.stderr
    assert not known.exists() or known.read_text() == ""


def _recorded_other_key(sshd: SshdServer, tmp_path: Path) -> tuple[Path, str]:
    """A known_hosts recording another ed25519 key for the sshd (a reinstalled node); and that key's fingerprint."""
    other = tmp_path / "other"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "kh"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    return known, fingerprint(base64.b64decode(blob))


def test_the_replace_prompt_says_which_recorded_key_is_removed(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    known, old = _recorded_other_key(sshd, tmp_path)
    config = sshd.write_factory(tmp_path / "f.yaml", known, "  n1: {host: 127.0.0.1}\n")
    declined = cli("--config", config, "nodes", "trust", "n1", "--replace", stdin="n\n", tty=True)
    assert declined.exit_code == 4
    new = cli("--config", config, "nodes", "trust", "n1", "-o", "json").json()["items"][0]["fingerprint"]
    said, question = declined.stderr.splitlines()[:2]
    assert said == (
        f"[127.0.0.1]:{sshd.port}: the recorded ssh-ed25519 key {old} is removed from {known} and {new} recorded "
        "instead."
    )
    assert question.startswith("Record 1 changed host key, removing the 1 recorded key they replace? [y/N]: ")
    assert old == fingerprint(base64.b64decode(known.read_text().split()[2]))  # declined: the old key stays
    accepted = cli("--config", config, "nodes", "trust", "n1", "--replace", stdin="y\n", tty=True)
    assert accepted.exit_code == 0, accepted.stderr
    assert known.read_text() == sshd.host_key_line + "\n"


def test_a_new_key_is_asked_for_as_before(cli: Any, sshd: SshdServer, tmp_path: Path) -> None:
    config = sshd.write_factory(tmp_path / "f.yaml", tmp_path / "kh", "  n1: {host: 127.0.0.1}\n")
    asked = cli("--config", config, "nodes", "trust", "n1", "--replace", stdin="n\n", tty=True)
    assert asked.stderr.startswith("Record 1 unknown host key? [y/N]: ")
    assert "removed" not in asked.stderr
