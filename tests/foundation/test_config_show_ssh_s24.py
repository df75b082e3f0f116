"""`config show --ssh`: what each SSH node connects with once ~/.ssh/config applies, and where each value is from.

`config show` printed factory.yaml with defaults filled in, but a node's port, user, key and jump host also come from
~/.ssh/config: an operator asking why factoryctl goes to port 2222, as `ops`, through a bastion had nothing to look
at (OpenSSH has `ssh -G`). `--ssh [TARGET]` is that listing, resolved as the connection resolves it (nothing
connects), with a `sources` entry naming factory.yaml, the ~/.ssh/config line, or the default for each value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SSH_CONFIG = """\
Host bastion
    HostName 10.9.9.9
    User jumper
    Port 2200

Host gpu*
    Port 2222
    User ops
    IdentityFile ~/.ssh/gpu_key
    ProxyJump bastion

Match exec "echo %h >> {log}" host gpu02
    HostName 10.0.0.2
"""
INVENTORY = """\
name: lab
nodes:
  gpu01: {host: gpu01}
  gpu02: {host: gpu02, user: root, port: 2022}
  plain: {host: 10.1.1.1}
  ws: {transport: local}
"""


@pytest.fixture
def config(isolated_home: Path, tmp_path: Path) -> Path:
    """factory.yaml, and a ~/.ssh/config under the test's HOME whose `Match exec` logs each host it runs for."""
    ssh = isolated_home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "config").write_text(SSH_CONFIG.format(log=tmp_path / "exec.log"))
    (ssh / "config").chmod(0o600)
    path = tmp_path / "factory.yaml"
    path.write_text(INVENTORY)
    return path


def _items(cli, config: Path, *args: str) -> dict[str, dict[str, object]]:
    result = cli("--config", str(config), "config", "show", "--ssh", *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == []
    return {item["node"]: item for item in document["items"]}


def test_each_value_is_the_connections_and_names_its_ssh_config_line(cli, config: Path, isolated_home: Path):
    items = _items(cli, config)
    ssh_config = f"{isolated_home}/.ssh/config"
    assert set(items) == {"gpu01", "gpu02", "plain"}  # a local node has no SSH settings
    gpu01 = items["gpu01"]
    assert (gpu01["host"], gpu01["port"], gpu01["user"]) == ("gpu01", 2222, "ops")
    assert gpu01["identity_files"] == [f"{isolated_home}/.ssh/gpu_key"]
    assert gpu01["jump"] == ["jumper@10.9.9.9:2200"]
    assert gpu01["sources"] == {
        "host": "factory.yaml",
        "port": f"{ssh_config}, line 7",
        "user": f"{ssh_config}, line 8",
        "identity_files": f"{ssh_config}, line 9",
        "jump": f"{ssh_config}, line 10",
    }


def test_factory_yaml_wins_and_a_match_block_is_named(cli, config: Path, isolated_home: Path):
    gpu02 = _items(cli, config, "gpu02")["gpu02"]
    assert (gpu02["host"], gpu02["port"], gpu02["user"]) == ("10.0.0.2", 2022, "root")
    sources = gpu02["sources"]
    assert isinstance(sources, dict)
    assert (sources["host"], sources["port"], sources["user"]) == (
        f"{isolated_home}/.ssh/config, line 13",
        "factory.yaml",
        "factory.yaml",
    )


def test_what_nothing_sets_is_a_default(cli, config: Path):
    plain = _items(cli, config, "plain")["plain"]
    assert (plain["host"], plain["port"], plain["jump"], plain["identity_files"]) == ("10.1.1.1", 22, [], [])
    assert plain["sources"] == {
        "host": "factory.yaml",
        "port": "default",
        "user": "default",
        "identity_files": "default",
        "jump": "default",
    }


def test_match_exec_runs_once_per_host_as_when_connecting(cli, config: Path, tmp_path: Path):
    """The connection's rule (ssh_config.resolve): each `Match exec` command once per node and jump host looked up."""
    _items(cli, config, "gpu02")
    assert (tmp_path / "exec.log").read_text().split() == ["gpu02", "10.9.9.9"]


def test_no_match_exec_runs_that_connecting_would_not_run_and_an_included_line_is_named(
    cli, config: Path, isolated_home: Path, tmp_path: Path
):
    """gpu01's HostName 10.0.0.5 fails `!host 10.0.0.*` before the command: connecting runs it for no host but plain."""
    ssh = isolated_home / ".ssh"
    (ssh / "nodes.conf").write_text("Host gpu01\n    HostName 10.0.0.5\n")
    (ssh / "nodes.conf").chmod(0o600)
    (ssh / "config").write_text(f'Include nodes.conf\nMatch !host 10.0.0.* exec "echo %n >> {tmp_path}/exec.log"\n')
    gpu01 = _items(cli, config, "gpu01")["gpu01"]
    assert (gpu01["host"], gpu01["sources"]["host"]) == ("10.0.0.5", f"{ssh}/nodes.conf, line 2")  # type: ignore[index]
    assert not (tmp_path / "exec.log").exists()
    _items(cli, config, "plain")
    assert (tmp_path / "exec.log").read_text() == "10.1.1.1\n"


def test_the_table_says_where_each_value_not_from_factory_yaml_is_from(cli, config: Path):
    result = cli("--config", str(config), "config", "show", "--ssh")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NODE", "HOSTNAME", "PORT", "USER", "IDENTITY", "JUMP", "SOURCE"]
    gpu02 = next(line for line in lines if line.startswith("gpu02 "))
    assert gpu02.split()[1:4] == ["10.0.0.2", "2022", "root"]
    assert gpu02.endswith("host=~/.ssh/config:13 identity=~/.ssh/config:9 jump=~/.ssh/config:10")
    assert "note: ws: transport local, no SSH settings to show." in result.stderr


def test_a_proxycommand_is_the_nodes_config_error_as_when_connecting(cli, config: Path, isolated_home: Path):
    with (isolated_home / ".ssh" / "config").open("a") as ssh_config:
        ssh_config.write("\nHost 10.1.1.1\n    ProxyCommand nc %h %p\n")
    result = cli("--config", str(config), "config", "show", "--ssh", "-o", "json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert [item["node"] for item in document["items"]] == ["gpu01", "gpu02"]
    assert [(e["node"], e["error"]) for e in document["errors"]] == [("plain", "config")]
    assert "line 16: ProxyCommand 'nc %h %p' for host 10.1.1.1 cannot be used" in result.stderr
    assert "hint: use ProxyJump instead" in result.stderr


def test_a_target_needs_ssh_and_config_show_is_unchanged(cli, config: Path):
    result = cli("--config", str(config), "config", "show", "gpu01")
    assert result.exit_code == 2
    assert "`config show` takes a TARGET (gpu01) only with --ssh." in result.stderr
    assert "config show --ssh gpu01" in result.stderr
    document = cli("--config", str(config), "config", "show", "-o", "json").json()
    assert isinstance(document, dict)
    assert list(document) == ["name", "state_dir", "ssh", "controller", "scheduler", "power", "nodes", "groups"]


def _complete(words: str, config: Path) -> list[str]:
    env = {
        **os.environ,
        "_FACTORYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
        "FACTORYCTL_CONFIG": str(config),
    }
    argv = [sys.executable, "-m", "factoryctl"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_offers_ssh_and_the_targets(config: Path):
    assert _complete("factoryctl config show --s", config) == ["--ssh"]
    assert _complete("factoryctl config show --ssh gpu", config) == ["gpu01", "gpu02"]
