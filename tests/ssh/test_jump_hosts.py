"""Jump hosts (ProxyJump): the caller's timeouts, and one shared attempt for the nodes behind one.

Against a real sshd (the jump host that works) and a listener that never answers (the jump host that hangs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
from silent_listener import silent_listener


def _ssh_config(home: Path, jump_port: int, sshd: Any) -> None:
    """Nodes `behind-*` are the sshd, reached through the jump host `jumpy` on `jump_port`."""
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host behind-*\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump_port}\n  User {sshd.user}\n  IdentityFile {sshd.user_key}\n"
    )


def _factory(path: Path, sshd: Any, known_hosts: Path, count: int, connect_timeout: float) -> str:
    ssh = (
        f"connect_timeout_s: {connect_timeout:g}, user: {sshd.user}, identity_file: {sshd.user_key}, "
        f"known_hosts: {known_hosts}"
    )
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n[1-{count}]: {{host: behind-1}}\n")
    return str(path)


def _accepted(port: int) -> int:
    """How many connections the listener on `port` (in this process) accepted."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN
    )


def test_nodes_behind_a_silent_jump_host_share_one_attempt_bounded_by_the_connect_timeout(
    cli, isolated_home, sshd, known_hosts, tmp_path
):
    nodes, timeout = 4, 2.0
    with silent_listener() as port:
        _ssh_config(isolated_home, port, sshd)
        config = _factory(tmp_path / "factory.yaml", sshd, known_hosts, nodes, timeout)
        started = time.monotonic()
        r = cli("--config", config, "exec", "all", "--timeout", f"{timeout:g}", "-o", "json", "--", "true")
        took = time.monotonic() - started
        accepted = _accepted(port)
    assert r.exit_code == 4, r.stderr
    assert accepted == 1  # one attempt shared by every node, not one each in turn
    # bounded by factory.yaml's 2 s, not the 10 s default: serially, or with the default, it would pass 8 s
    assert took < nodes * timeout
    errors = r.json()["errors"]
    assert [e["node"] for e in errors] == [f"n{i}" for i in range(1, nodes + 1)]
    assert all(e["error"] == "banner" and e["message"].startswith("jump host ") for e in errors)
