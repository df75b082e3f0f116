"""~/.ssh/config mapping and ProxyJump through one shared jump connection, against a real sshd."""

from __future__ import annotations

from pathlib import Path

from sshd_fixture import free_port

from factoryctl.model.inventory import NodeSpec
from factoryctl.transport import ssh_node
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_pool import SshPool

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


def _write_config(home: Path, sshd, jump: bool) -> None:
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    text = f"""
Host behind-*
  HostName 127.0.0.1
  Port {sshd.port}
  User {sshd.user}
  IdentityFile {sshd.user_key}
{"  ProxyJump jumpy" if jump else ""}

Host jumpy
  HostName 127.0.0.1
  Port {sshd.port}
  User {sshd.user}
  IdentityFile {sshd.user_key}
"""
    (ssh_dir / "config").write_text(text)


def test_ssh_config_fills_hostname_user_port_identity(isolated_home, sshd, known_hosts):
    _write_config(isolated_home, sshd, jump=False)
    target = resolve(NodeSpec("n1", "behind-1", known_hosts=str(known_hosts)))
    assert (target.host, target.port, target.user) == ("127.0.0.1", sshd.port, sshd.user)
    assert target.identity_files == (str(sshd.user_key),)
    assert target.jump is None
    pool = SshPool(OPTIONS)
    try:
        assert pool.connect(NodeSpec("n1", "behind-1", known_hosts=str(known_hosts))).run(["true"]).exit_code == 0
    finally:
        pool.close()


def test_factory_yaml_wins_over_ssh_config(isolated_home, sshd, tmp_path):
    _write_config(isolated_home, sshd, jump=False)
    target = resolve(NodeSpec("n1", "behind-1", port=2200, user="ops", identity_file=str(tmp_path / "k")))
    assert (target.port, target.user, target.identity_files) == (2200, "ops", (str(tmp_path / "k"),))


def test_proxyjump_shares_one_jump_connection(isolated_home, sshd, known_hosts):
    _write_config(isolated_home, sshd, jump=True)
    specs = [NodeSpec(f"n{i}", f"behind-{i}", known_hosts=str(known_hosts)) for i in range(3)]
    before = len(ssh_node._JUMPS._connections)
    transports = [ssh_node.SshTransport.open(spec, "lab", OPTIONS) for spec in specs]
    try:
        assert resolve(specs[0]).jump is not None
        for transport in transports:
            assert transport.run(["echo", "ok"], timeout=60).stdout == b"ok\n"
        assert len(ssh_node._JUMPS._connections) == before + 1
    finally:
        for transport in transports:
            transport.close()
        ssh_node._JUMPS.close()


def test_proxyjump_to_a_dead_port_is_refused(isolated_home, sshd, known_hosts):
    import pytest

    from factoryctl.errors import NodeError

    _write_config(isolated_home, sshd, jump=True)
    port = free_port()  # nothing listens there
    spec = NodeSpec("n1", "behind-1", port=port, known_hosts=str(known_hosts))
    try:
        with pytest.raises(NodeError) as caught:
            ssh_node.SshTransport.open(spec, "lab", OPTIONS)
    finally:
        ssh_node._JUMPS.close()
    assert caught.value.kind == "refused"
    assert "jump host" in caught.value.message


def test_unknown_jump_host_key_names_the_jump_host(isolated_home, sshd, tmp_path):
    import pytest

    from factoryctl.errors import NodeError

    _write_config(isolated_home, sshd, jump=True)
    spec = NodeSpec("n1", "behind-1", known_hosts=str(tmp_path / "empty"))
    try:
        with pytest.raises(NodeError) as caught:
            ssh_node.SshTransport.open(spec, "lab", OPTIONS)
    finally:
        ssh_node._JUMPS.close()
    assert caught.value.kind == "host_key"
    assert caught.value.message.startswith("jump host ")
    hint = caught.value.hint or ""
    assert "`factoryctl nodes trust n1`" in hint  # which records a jump host's key too (session 11)
    assert f"-o UserKnownHostsFile={tmp_path / 'empty'}" in hint  # plain ssh would write ~/.ssh/known_hosts


def test_nodes_lists_the_port_the_connection_uses(isolated_home, tmp_path, cli):
    """`nodes -o json` shows ~/.ssh/config's Port for a host factory.yaml gives none (it said 22), and re-reads
    the file when it changes; a local node has no port."""
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir()
    config = tmp_path / "factory.yaml"
    config.write_text("nodes:\n  far: {host: far-alias}\n  here: {transport: local, sim: h100-sxm}\n")
    ports = {}
    for turn in (1, 2):
        dead = free_port()  # nothing listens there
        (ssh_dir / "config").write_text(f"Host far-alias\n  HostName 127.0.0.1\n  Port {dead}\n")
        result = cli("--config", str(config), "nodes", "-o", "json", "--timeout", "5")
        items = {item["node"]: item for item in result.json()["items"]}
        assert items["far"]["error"] == "refused", result.stderr
        ports[turn] = dead
        assert items["far"]["port"] == dead
        assert items["here"]["port"] is None
    assert ports[1] != ports[2]
