"""Host keys are compared per key type, as OpenSSH does (real sshd with several host keys; paramiko is not mocked).

known_hosts often records one of a node's keys only (older OpenSSH wrote ECDSA, `ssh-keyscan -t ecdsa`). paramiko
asks for ed25519 first, so without asking for the recorded types first such a node presented a key of another type
and was refused as "HOST KEY CHANGED", exit 4, with advice (`nodes trust --replace`) that deleted the verified key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_fixture import PATIENT, SshdServer, keygen, start_sshd

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, fingerprint
from factoryctl.transport.ssh_pool import SshPool

pytestmark = pytest.mark.sshd  # `multi` starts its own sshd (start_sshd), not through the fixtures

ED25519 = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode()
ED25519_OTHER = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"o" * 36).decode()
ECDSA = base64.b64encode(b"\x00\x00\x00\x13ecdsa-sha2-nistp256" + b"e" * 40).decode()
RSA = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"r" * 40).decode()


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """An sshd with an ed25519 (the fixture's), an ECDSA and an RSA host key, as a stock OpenSSH install has."""
    root = tmp_path_factory.mktemp("sshd-multi")
    extra = "".join(f"HostKey {keygen(root / f'ssh_host_{kind}_key', kind)}\n" for kind in ("ecdsa", "rsa"))
    server = start_sshd(root, extra_config=extra)
    yield server
    server.stop()


def _line(server: SshdServer, kind: str) -> str:
    """`[127.0.0.1]:port TYPE KEY` for the server's `kind` host key (ed25519, ecdsa or rsa)."""
    key_type, blob = (server.root / f"ssh_host_{kind}_key.pub").read_text().split()[:2]
    return f"[{server.host}]:{server.port} {key_type} {blob}"


def _stranger(tmp_path: Path, kind: str) -> tuple[str, str]:
    """A `kind` key no server has: (type, base64 blob)."""
    path = keygen(tmp_path / f"stranger_{kind}", kind)
    key_type, blob = path.with_suffix(".pub").read_text().split()[:2]
    return key_type, blob


def _connect(server: SshdServer, known: Path) -> str:
    """Connect through the pool and return the type of the host key that was accepted."""
    pool = SshPool(PATIENT)
    try:
        connection = pool.connect(server.node("n1", known))
        assert connection.run(["true"], timeout=60).exit_code == 0
        assert connection.host_key is not None
        return connection.host_key.key_type
    finally:
        pool.close()


def _refusal(server: SshdServer, known: Path) -> NodeError:
    with pytest.raises(NodeError) as caught:
        _connect(server, known)
    assert caught.value.kind == "host_key"
    assert caught.value.exit_code == ExitCode.CONNECTION
    return caught.value


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_a_node_whose_recorded_key_is_not_ed25519_connects(multi, tmp_path, kind):
    known = tmp_path / "kh"
    known.write_text(_line(multi, kind) + "\n")
    expected = "ssh-rsa" if kind == "rsa" else "ecdsa-sha2-nistp256"
    assert _connect(multi, known) == expected
    assert known.read_text() == _line(multi, kind) + "\n"  # nothing added


def test_a_hashed_recorded_ecdsa_key_connects(multi, tmp_path):
    known = tmp_path / "kh"
    known.write_text(_line(multi, "ecdsa") + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text()
    assert _connect(multi, known) == "ecdsa-sha2-nistp256"


def test_only_a_differing_key_of_the_same_type_is_changed(multi, tmp_path, cli):
    key_type, blob = _stranger(tmp_path, "ed25519")
    known = tmp_path / "kh"
    known.write_text(f"[{multi.host}]:{multi.port} {key_type} {blob}\n")
    error = _refusal(multi, known)
    assert "HOST KEY CHANGED" in error.message
    assert "--replace" in (error.hint or "")
    config = multi.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: 127.0.0.1}\n")
    result = cli("--config", config, "exec", "n1", "--", "true")
    assert result.exit_code == 4
    assert "HOST KEY CHANGED" in result.stderr


def test_a_revoked_or_cert_authority_line_of_another_type_changes_nothing(multi, tmp_path):
    key_type, blob = _stranger(tmp_path, "ed25519")
    known = tmp_path / "kh"
    known.write_text(
        f"@cert-authority * {key_type} {blob}\n@revoked * {key_type} {blob}\n" + _line(multi, "ecdsa") + "\n"
    )
    assert _connect(multi, known) == "ecdsa-sha2-nistp256"


def test_a_node_that_dropped_the_recorded_type_is_unknown_and_trust_adds_the_key_only_with_replace(sshd, tmp_path, cli):
    """The session sshd has an ed25519 key only; known_hosts records an ECDSA key for it.

    Not "changed" (its ECDSA key may well be the recorded one), but not a new host either: a man in the middle may
    offer only a type never recorded, so, as OpenSSH warns, `trust --yes` alone does not record it.
    """
    key_type, blob = _stranger(tmp_path, "ecdsa")
    recorded = f"[{sshd.host}]:{sshd.port} {key_type} {blob}"
    known = tmp_path / "kh"
    known.write_text(f"# mine\n{recorded}\n")
    error = _refusal(sshd, known)
    assert error.message.startswith(f"unknown host key for [{sshd.host}]:{sshd.port}: ssh-ed25519 ")
    assert "keys of other types are recorded for it (ecdsa-sha2-nistp256)" in error.message
    assert "CHANGED" not in error.message
    assert "someone may be intercepting" in (error.hint or "")
    assert "`factoryctl nodes trust n1 --replace`" in (error.hint or "")
    config = sshd.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: 127.0.0.1}\n")
    refused = cli("--config", config, "nodes", "trust", "n1", "--yes", "-o", "json")
    assert refused.exit_code == 4, refused.stderr
    assert known.read_text() == f"# mine\n{recorded}\n"
    result = cli("--config", config, "nodes", "trust", "n1", "--yes", "--replace", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [item] = result.json()["items"]
    assert (item["key_type"], item["recorded_fingerprints"], item["recorded"]) == ("ssh-ed25519", [], True)
    assert item["other_types_recorded"] == ["ecdsa-sha2-nistp256"]
    assert known.read_text() == f"# mine\n{recorded}\n{sshd.host_key_line}\n"
    assert cli("--config", config, "exec", "n1", "--", "true").exit_code == 0


def test_trust_shows_a_recorded_ecdsa_key_as_known_and_writes_nothing(multi, tmp_path, cli):
    known = tmp_path / "kh"
    known.write_text(_line(multi, "ecdsa") + "\n")
    config = multi.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: 127.0.0.1}\n")
    for extra in ([], ["--replace"]):
        result = cli("--config", config, "nodes", "trust", "n1", "--yes", *extra, "-o", "json")
        assert result.exit_code == 0, result.stderr
        [item] = result.json()["items"]
        assert (item["key_type"], item["status"], item["recorded"]) == ("ecdsa-sha2-nistp256", "known", False)
    assert known.read_text() == _line(multi, "ecdsa") + "\n"


def test_trust_replace_replaces_the_changed_type_only(multi, tmp_path, cli):
    key_type, blob = _stranger(tmp_path, "ed25519")
    known = tmp_path / "kh"
    known.write_text(f"{_line(multi, 'ecdsa')}\n[{multi.host}]:{multi.port} {key_type} {blob}\n")
    config = multi.write_factory(tmp_path / "factory.yaml", known, "  n1: {host: 127.0.0.1}\n")
    refused = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert refused.exit_code == 4
    assert "CHANGED" in refused.stderr
    result = cli("--config", config, "nodes", "trust", "n1", "--yes", "--replace")
    assert result.exit_code == 0, result.stderr
    assert known.read_text() == f"{_line(multi, 'ecdsa')}\n{_line(multi, 'ed25519')}\n"


# check() and record(): the type rule without a server


def _hashed(name: str) -> str:
    salt = b"s" * 20
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _known(tmp_path: Path, text: str) -> KnownHosts:
    path = tmp_path / "kh"
    path.write_text(text)
    return KnownHosts(path)


def test_check_a_key_of_an_unrecorded_type_is_unknown_not_changed(tmp_path):
    known = _known(tmp_path, f"gpu01 ecdsa-sha2-nistp256 {ECDSA}\n")
    blob = base64.b64decode(ED25519)
    assert known.check("gpu01", 22, "ssh-ed25519", blob) is HostKeyStatus.unknown
    assert known.recorded_types("gpu01", 22) == ("ecdsa-sha2-nistp256",)
    assert known.recorded_fingerprints("gpu01", 22, "ssh-ed25519") == []
    assert known.recorded_fingerprints("gpu01", 22) == [fingerprint(base64.b64decode(ECDSA))]


def test_check_changed_only_against_entries_of_the_same_type(tmp_path):
    text = f"[gpu01]:2222 ecdsa-sha2-nistp256 {ECDSA}\n{_hashed('[gpu01]:2222')} ssh-ed25519 {ED25519_OTHER}\n"
    known = _known(tmp_path, text)
    assert known.check("gpu01", 2222, "ssh-ed25519", base64.b64decode(ED25519)) is HostKeyStatus.changed
    assert known.recorded_fingerprints("gpu01", 2222, "ssh-ed25519") == [fingerprint(base64.b64decode(ED25519_OTHER))]
    assert known.check("gpu01", 2222, "ecdsa-sha2-nistp256", base64.b64decode(ECDSA)) is HostKeyStatus.known
    assert known.recorded_types("gpu01", 2222) == ("ecdsa-sha2-nistp256", "ssh-ed25519")
    assert known.recorded_types("gpu01", 22) == ()  # `[gpu01]:2222` is not port 22's plain `gpu01`


def test_check_rsa_signature_algorithms_count_as_the_recorded_ssh_rsa(tmp_path):
    known = _known(tmp_path, f"gpu01 ssh-rsa {RSA}\n")
    assert known.check("gpu01", 22, "rsa-sha2-512", base64.b64decode(RSA)) is HostKeyStatus.known
    assert known.check("gpu01", 22, "rsa-sha2-256", base64.b64decode(ECDSA)) is HostKeyStatus.changed
    assert known.check("gpu01", 22, "ssh-ed25519", base64.b64decode(ED25519)) is HostKeyStatus.unknown


def test_check_markers_are_not_recorded_keys(tmp_path):
    text = f"@cert-authority * ssh-ed25519 {ED25519_OTHER}\n@revoked gpu01 ssh-ed25519 {ED25519_OTHER}\n"
    known = _known(tmp_path, text + f"gpu01 ecdsa-sha2-nistp256 {ECDSA}\n")
    assert known.check("gpu01", 22, "ssh-ed25519", base64.b64decode(ED25519)) is HostKeyStatus.unknown
    assert known.check("gpu01", 22, "ssh-ed25519", base64.b64decode(ED25519_OTHER)) is HostKeyStatus.revoked
    assert known.recorded_types("gpu01", 22) == ("ecdsa-sha2-nistp256",)


def test_record_replace_drops_the_same_type_only(tmp_path):
    path = tmp_path / "kh"
    path.write_text(f"gpu01 ecdsa-sha2-nistp256 {ECDSA}\n{_hashed('gpu01')} ssh-ed25519 {ED25519_OTHER}\n")
    KnownHosts(path).record("gpu01", 22, "ssh-ed25519", base64.b64decode(ED25519), replace=True)
    assert path.read_text() == f"gpu01 ecdsa-sha2-nistp256 {ECDSA}\ngpu01 ssh-ed25519 {ED25519}\n"
    KnownHosts(path).record("gpu01", 22, "ssh-rsa", base64.b64decode(RSA))
    assert path.read_text().splitlines()[:2] == [f"gpu01 ecdsa-sha2-nistp256 {ECDSA}", f"gpu01 ssh-ed25519 {ED25519}"]
