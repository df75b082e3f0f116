"""`nodes trust` keeps every other known_hosts line byte for byte, and writes through no link another user planted.

In the review a comment `# caf\\xe9` (Latin-1) came back as `# caf\\ufffd` after `nodes trust`: the file was read as
UTF-8 with errors replaced and written back from that text. And a known_hosts that is another user's link in a
directory anyone may write was followed: the rename replaced the file it named.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from factoryctl.errors import ActionFailed
from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts

KEY = base64.b64decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
OTHER = base64.b64decode("AAAAC3NzaC1lZDI1NTE5AAAAIBWBtzCUDQpNU+aNeYROEN1NKzs0vcmMupRnp0qQMlCb")
LINE = f"ssh-ed25519 {base64.b64encode(KEY).decode()}"
NOBODY = 65534
ROOT = os.geteuid() == 0
WHO = "not root" if ROOT else f"neither you (uid {os.geteuid()}) nor root"
#: Lines a user may have: a Latin-1 comment, CRLF ends, a last line without its newline.
KEPT = b"# caf\xe9 \xff\r\notherhost " + LINE.encode() + b"\r\n# last \xe9"


def test_lines_that_are_not_utf8_are_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_bytes(KEPT)
    known = KnownHosts(path)
    known.record("10.0.0.1", 2222, "ssh-ed25519", KEY)
    assert path.read_bytes() == KEPT + b"\n[10.0.0.1]:2222 " + LINE.encode() + b"\n"
    assert known.check("10.0.0.1", 2222, "ssh-ed25519", KEY) is HostKeyStatus.known
    assert KnownHosts(path).check("otherhost", 22, "ssh-ed25519", KEY) is HostKeyStatus.known


def test_replacing_a_key_drops_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    stale = f"[10.0.0.1]:2222 ssh-ed25519 {base64.b64encode(OTHER).decode()}\r\n".encode()
    path.write_bytes(b"# caf\xe9\r\n" + stale + b"# \xff\n")
    KnownHosts(path).record("10.0.0.1", 2222, "ssh-ed25519", KEY, replace=True)
    assert path.read_bytes() == b"# caf\xe9\r\n# \xff\n[10.0.0.1]:2222 " + LINE.encode() + b"\n"


@pytest.mark.skipif(not ROOT, reason="giving a link to another user needs root")
def test_another_users_link_where_anyone_may_write_is_not_written_through(tmp_path: Path) -> None:
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    shared.chmod(0o1777)
    mine.mkdir()
    (mine / "authorized").write_text("precious\n")
    link = shared / "known_hosts"
    link.symlink_to(mine / "authorized")
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(ActionFailed) as caught:
        KnownHosts(link).record("gpu01", 22, "ssh-ed25519", KEY)
    assert caught.value.message == (
        f"cannot write the known_hosts file {link}: {link} is a symbolic link in {shared}, where anyone may write, "
        f"and belongs to uid {NOBODY}, {WHO}: its owner chose the file it names; nothing was recorded."
    )
    assert (mine / "authorized").read_text() == "precious\n"
    assert sorted(p.name for p in mine.iterdir()) == ["authorized"]


def test_nodes_trust_keeps_the_other_lines_bytes(cli: Any, tmp_path: Path, sshd: Any) -> None:
    known_hosts = tmp_path / "kh"
    known_hosts.write_bytes(KEPT)
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert result.exit_code == 0, result.stderr
    assert known_hosts.read_bytes().startswith(KEPT + b"\n[127.0.0.1]:")
    assert len(known_hosts.read_bytes().splitlines()) == 4


@pytest.mark.skipif(not ROOT, reason="giving a link to another user needs root")
def test_nodes_trust_through_a_planted_link_records_nothing(cli: Any, tmp_path: Path, sshd: Any) -> None:
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    shared.chmod(0o1777)
    mine.mkdir()
    (mine / "authorized").write_text("precious\n")
    link = shared / "kh"
    link.symlink_to(mine / "authorized")
    os.lchown(link, NOBODY, NOBODY)
    config = sshd.write_factory(tmp_path / "factory.yaml", link, "  n1: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert result.exit_code == 1
    assert f"factoryctl: cannot write the known_hosts file {link}: {link} is a symbolic link" in result.stderr
    assert (mine / "authorized").read_text() == "precious\n"
