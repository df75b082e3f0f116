"""`nodes trust` records a jump host's key too: first the jump host's, then, through it, the node's (as `ssh -J`).

Against real sshds: the session's one is the node, one started for the test is the jump host (ProxyJump in the
test's ~/.ssh/config), and the keys go to a known_hosts file of factory.yaml's own (`ssh.known_hosts`), never to
~/.ssh/known_hosts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer

from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts


@pytest.fixture
def jump(sshd_factory: Callable[..., SshdServer], sshd: SshdServer, isolated_home: Path) -> SshdServer:
    """A jump host; nodes `behind-*` are the session sshd, reached through it."""
    server = sshd_factory()
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host behind-*\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {server.port}\n  User {server.user}\n"
        f"  IdentityFile {server.user_key}\n"
    )
    return server


def _factory(path: Path, sshd: SshdServer, known_hosts: Path, nodes: int = 1) -> str:
    ssh = f"connect_timeout_s: 30, user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {known_hosts}"
    body = "  n1: {host: behind-1}\n" if nodes == 1 else f"  n[1-{nodes}]: {{host: behind-1}}\n"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n{body}")
    return str(path)


def _status(known_hosts: Path, server: SshdServer) -> HostKeyStatus:
    kind, blob = server.host_key.with_suffix(".pub").read_text().split()[:2]
    return KnownHosts(str(known_hosts)).check(server.host, server.port, kind, base64.b64decode(blob))


def test_trust_yes_records_the_jump_hosts_key_then_the_nodes_in_the_configured_file(
    cli: Any, sshd: SshdServer, jump: SshdServer, isolated_home: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "custom_known_hosts"
    config = _factory(tmp_path / "factory.yaml", sshd, known_hosts)
    refused = cli("--config", config, "exec", "n1", "--", "true")
    assert refused.exit_code == 4, refused.stderr
    r = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert r.exit_code == 0, r.stderr
    assert _status(known_hosts, jump) is HostKeyStatus.known
    assert _status(known_hosts, sshd) is HostKeyStatus.known
    assert not (isolated_home / ".ssh" / "known_hosts").exists()
    rows = [line.split() for line in r.stdout.splitlines() if "[127.0.0.1]:" in line]
    assert rows[0][:5] == ["jump", "host", "of", "n1", f"[127.0.0.1]:{jump.port}"]
    assert rows[0][-1] == "trusted"
    assert rows[1][:2] == ["n1", f"[127.0.0.1]:{sshd.port}"]
    assert rows[1][-1] == "trusted"
    assert r.stderr.count("recorded 1 host key(s)") == 2
    done = cli("--config", config, "exec", "n1", "--", "echo", "through")
    assert (done.exit_code, done.stdout.splitlines()[-1]) == (0, "through"), done.stderr


def test_trust_json_names_the_jump_host_and_groups_the_nodes_behind_it(
    cli: Any, sshd: SshdServer, jump: SshdServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "kh"
    config = _factory(tmp_path / "factory.yaml", sshd, known_hosts, nodes=3)
    r = cli("--config", config, "nodes", "trust", "all", "--yes", "-o", "json")
    assert r.exit_code == 0, r.stderr
    items = r.json()["items"]  # type: ignore[index]
    first, *nodes = items
    assert first["node"] == "n[1-3]"
    assert first["jump_host"] == f"{jump.user}@127.0.0.1:{jump.port}"
    assert (first["address"], first["status"], first["recorded"]) == (f"[127.0.0.1]:{jump.port}", "trusted", True)
    assert [(i["node"], i["jump_host"], i["address"]) for i in nodes] == [
        (f"n{i}", None, f"[127.0.0.1]:{sshd.port}") for i in (1, 2, 3)
    ]
    assert len(known_hosts.read_text().splitlines()) == 2  # one line per key, not per node


def test_trust_without_an_answer_records_nothing_and_names_the_jump_host(
    cli: Any, sshd: SshdServer, jump: SshdServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "kh"
    config = _factory(tmp_path / "factory.yaml", sshd, known_hosts)
    r = cli("--config", config, "nodes", "trust", "n1")
    assert r.exit_code == 4
    assert not known_hosts.exists() or known_hosts.read_text() == ""
    assert (
        f"factoryctl: n1: jump host {jump.user}@127.0.0.1:{jump.port} ([127.0.0.1]:{jump.port}) host key not "
        "recorded (not confirmed)."
    ) in r.stderr


def test_trust_asks_for_the_jump_host_then_for_the_node(
    cli: Any, sshd: SshdServer, jump: SshdServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "kh"
    config = _factory(tmp_path / "factory.yaml", sshd, known_hosts)
    r = cli("--config", config, "nodes", "trust", "n1", stdin="y\nn\n", tty=True)
    assert r.exit_code == 4
    assert r.stderr.count("Record 1 unknown host key? [y/N]:") == 2
    assert _status(known_hosts, jump) is HostKeyStatus.known
    assert _status(known_hosts, sshd) is HostKeyStatus.unknown
    assert f"factoryctl: n1: [127.0.0.1]:{sshd.port} host key not recorded (not confirmed)." in r.stderr


def test_a_known_jump_host_is_not_shown(cli: Any, sshd: SshdServer, jump: SshdServer, tmp_path: Path) -> None:
    known_hosts = jump.write_known_hosts(tmp_path / "kh")
    config = _factory(tmp_path / "factory.yaml", sshd, known_hosts)
    r = cli("--config", config, "nodes", "trust", "n1", "--yes", "-o", "json")
    assert r.exit_code == 0, r.stderr
    [item] = r.json()["items"]  # type: ignore[index]
    assert (item["node"], item["jump_host"], item["status"]) == ("n1", None, "trusted")
