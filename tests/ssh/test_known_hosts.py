"""known_hosts parsing and matching (unit tests: no sshd)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, fingerprint, parse, record_name

KEY = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode()
OTHER = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"o" * 36).decode()


def _hashed(name: str) -> str:
    salt = b"s" * 20
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _known(tmp_path, text: str) -> KnownHosts:
    path = tmp_path / "kh"
    path.write_text(text)
    return KnownHosts(path)


def test_port_22_is_plain_host_other_ports_bracketed(tmp_path):
    known = _known(tmp_path, f"gpu01 ssh-ed25519 {KEY}\n[gpu02]:2222 ssh-ed25519 {KEY}\n")
    blob = base64.b64decode(KEY)
    assert known.check("gpu01", 22, "ssh-ed25519", blob) is HostKeyStatus.known
    assert known.check("gpu01", 2222, "ssh-ed25519", blob) is HostKeyStatus.unknown
    assert known.check("gpu02", 2222, "ssh-ed25519", blob) is HostKeyStatus.known
    assert (record_name("h", 22), record_name("h", 2222)) == ("h", "[h]:2222")


def test_hashed_wildcard_and_negated_patterns(tmp_path):
    text = f"{_hashed('[10.0.0.5]:2222')} ssh-ed25519 {KEY}\ngpu*,!gpu13 ssh-ed25519 {KEY}\n"
    known = _known(tmp_path, text)
    blob = base64.b64decode(KEY)
    assert known.check("10.0.0.5", 2222, "ssh-ed25519", blob) is HostKeyStatus.known
    assert known.check("gpu07", 22, "ssh-ed25519", blob) is HostKeyStatus.known
    assert known.check("gpu13", 22, "ssh-ed25519", blob) is HostKeyStatus.unknown


def test_changed_revoked_and_cert_authority(tmp_path):
    text = (
        "# comment\n\n"
        f"@cert-authority *.example.com ssh-ed25519 {KEY}\n"
        f"gpu01 ssh-ed25519 {OTHER}\n"
        f"@revoked * ssh-ed25519 {KEY}\n"
        "garbage line\n"
        "gpu09 ssh-ed25519 not-base64!!\n"
    )
    known = _known(tmp_path, text)
    assert len(parse(text)) == 3
    assert known.check("gpu01", 22, "ssh-ed25519", base64.b64decode(KEY)) is HostKeyStatus.revoked
    assert known.check("gpu02", 22, "ssh-ed25519", base64.b64decode(OTHER)) is HostKeyStatus.unknown
    other = _known(tmp_path, f"gpu01 ssh-ed25519 {OTHER}\n")
    assert other.check("gpu01", 22, "ssh-ed25519", base64.b64decode(KEY)) is HostKeyStatus.changed
    assert other.recorded_fingerprints("gpu01", 22) == [fingerprint(base64.b64decode(OTHER))]


def test_record_appends_and_replace_keeps_other_lines(tmp_path):
    path = tmp_path / "ssh" / "known_hosts"
    known = KnownHosts(path)
    known.record("10.0.0.1", 2222, "ssh-ed25519", base64.b64decode(OTHER))
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as out:
        out.write(f"# mine\nelse ssh-ed25519 {OTHER}\n")
    KnownHosts(path).record("10.0.0.1", 2222, "ssh-ed25519", base64.b64decode(KEY), replace=True)
    assert path.read_text() == f"# mine\nelse ssh-ed25519 {OTHER}\n[10.0.0.1]:2222 ssh-ed25519 {KEY}\n"


def test_fingerprint_matches_openssh_format():
    blob = base64.b64decode(KEY)
    expected = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(blob) == f"SHA256:{expected}"
