"""`nodes trust` honours `HashKnownHosts yes` from ~/.ssh/config: the name is written hashed, as ssh writes it.

The setting is looked up for the node's host as `ssh -G` resolves it (per Host block), and the hashed line is one
that OpenSSH's own `ssh-keygen -F` finds and factoryctl's check reads back as known.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from sshd_fixture import SSH_KEYGEN

from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, hashed_name
from factoryctl.transport.ssh_config import hashes_known_hosts

OTHER = "|1|1co3ggfYCQyDoZZ7rFDxp3FRWNc=|ub7+i2iAapoiAX5l08VK3rl24jI= ssh-ed25519 " + "A" * 68 + "\n"
BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))


def _ssh_config(home: Path, text: str) -> None:
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "config").write_text(text)


def test_record_hashed_writes_a_salted_hmac_that_check_and_replace_read(tmp_path):
    known = KnownHosts(tmp_path / "kh")
    known.record("10.0.0.7", 2222, "ssh-ed25519", BLOB, hashed=True)
    line = (tmp_path / "kh").read_text()
    assert line.startswith("|1|")
    assert "10.0.0.7" not in line
    assert KnownHosts(tmp_path / "kh").check("10.0.0.7", 2222, "ssh-ed25519", BLOB) is HostKeyStatus.known
    assert KnownHosts(tmp_path / "kh").check("10.0.0.7", 22, "ssh-ed25519", BLOB) is HostKeyStatus.unknown
    new = BLOB[:-1] + b"\xff"
    KnownHosts(tmp_path / "kh").record("10.0.0.7", 2222, "ssh-ed25519", new, replace=True, hashed=True)
    lines = (tmp_path / "kh").read_text().splitlines()
    assert len(lines) == 1
    assert base64.b64encode(new).decode() in lines[0]


def test_hashed_name_is_openssh_s(tmp_path):
    salt = bytes(range(20))
    assert hashed_name("[10.0.0.7]:2222", salt) == hashed_name("[10.0.0.7]:2222", salt)
    kh = tmp_path / "kh"
    kh.write_text(f"{hashed_name('[10.0.0.7]:2222')} ssh-ed25519 {base64.b64encode(BLOB).decode()}\n")
    found = subprocess.run([SSH_KEYGEN, "-F", "[10.0.0.7]:2222", "-f", str(kh)], capture_output=True, text=True)
    assert found.returncode == 0
    assert "found: line 1" in found.stdout


def test_the_setting_is_looked_up_per_host_as_ssh_resolves_it(isolated_home):
    _ssh_config(isolated_home, "Host plain*\n  HashKnownHosts no\nHost *\n  HashKnownHosts yes\n")
    assert hashes_known_hosts(NodeSpec("n1", "gpu01"))
    assert not hashes_known_hosts(NodeSpec("n1", "plain01"))
    _ssh_config(isolated_home, "Host other\n  HashKnownHosts yes\n")
    assert not hashes_known_hosts(NodeSpec("n1", "gpu01"))


def test_a_jump_host_s_own_setting_counts_for_its_key(isolated_home):
    _ssh_config(isolated_home, "Host n*\n  ProxyJump ops@bastion:2200\nHost bastion\n  HashKnownHosts yes\n")
    assert not hashes_known_hosts(NodeSpec("n1", "n1"))
    assert hashes_known_hosts(NodeSpec("n1", "n1"), "ops@bastion:2200")


def test_nodes_trust_writes_a_hashed_line_with_hashknownhosts_yes(cli, isolated_home, sshd, tmp_path):
    """The review's case: an otherwise hashed known_hosts got a plain `[127.0.0.1]:port` line."""
    _ssh_config(isolated_home, "Host *\n  HashKnownHosts yes\n")
    kh = tmp_path / "kh"
    kh.write_text(OTHER)
    config = sshd.write_factory(tmp_path / "factory.yaml", kh, "  n1: {host: 127.0.0.1}\n")
    result = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert result.exit_code == 0, result.stderr
    lines = kh.read_text().splitlines()
    assert lines[0] == OTHER.strip()
    assert len(lines) == 2
    assert lines[1].startswith("|1|")
    assert "127.0.0.1" not in kh.read_text()
    found = subprocess.run([SSH_KEYGEN, "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(kh)], capture_output=True)
    assert found.returncode == 0  # OpenSSH finds the key under the hashed name
    ran = cli("--config", config, "exec", "n1", "--", "echo", "ok")
    assert ran.exit_code == 0, ran.stderr


def test_nodes_trust_writes_a_plain_line_without_it(cli, isolated_home, sshd, tmp_path):
    _ssh_config(isolated_home, "Host elsewhere\n  HashKnownHosts yes\n")
    kh = tmp_path / "kh"
    config = sshd.write_factory(tmp_path / "factory.yaml", kh, "  n1: {host: 127.0.0.1}\n")
    assert cli("--config", config, "nodes", "trust", "n1", "--yes").exit_code == 0
    assert kh.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
