"""`Match exec` in ~/.ssh/config runs as ssh runs it, so factory.yaml's `host` must not put a shell command in it.

paramiko's SSHConfig.lookup runs a `Match exec` command through a shell with %h, %n ... substituted unquoted, as
OpenSSH does; OpenSSH (since 9.6) refuses shell metacharacters in a host name given on its command line, and
factoryctl refuses them in factory.yaml's `host` (exit 3) and again where the node is looked up. The command runs
once per node looked up, not once per lookup pass (paramiko reads the config twice) or per Include in a Match block.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from user_ssh_config import write_user_ssh_config

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve


def _factory(tmp_path: Path, sshd, known_hosts: Path, nodes: str, user: bool = True) -> Path:
    factory = tmp_path / "factory.yaml"
    login = f"user: {sshd.user}, " if user else ""
    factory.write_text(
        f"name: lab\nssh: {{connect_timeout_s: 30, known_hosts: {known_hosts}, port: {sshd.port}, "
        f"{login}identity_file: {sshd.user_key}}}\nnodes:\n{nodes}"
    )
    return factory


_THREE = "".join(f"  n{i}: {{host: a{i}}}\n" for i in (1, 2, 3))


def test_a_failing_match_exec_runs_once_per_node_per_command(cli, isolated_home, sshd, known_hosts, tmp_path):
    log = tmp_path / "ran.log"
    write_user_ssh_config(
        isolated_home,
        f'Match exec "echo ran:%n >> {log}; false"\n  User nobody-at-all\nHost a*\n  HostName 127.0.0.1\n',
    )
    result = cli("--config", str(_factory(tmp_path, sshd, known_hosts, _THREE)), "exec", "n[1-3]", "--", "true")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert sorted(log.read_text().split()) == ["ran:a1", "ran:a2", "ran:a3"]


def test_a_matching_match_exec_applies_and_runs_once_per_node(cli, isolated_home, sshd, known_hosts, tmp_path):
    log = tmp_path / "ran.log"
    write_user_ssh_config(
        isolated_home,
        f'Match exec "echo ran:%n:%h >> {log}"\n  User {sshd.user}\nHost a*\n  HostName 127.0.0.1\n',
    )
    factory = _factory(tmp_path, sshd, known_hosts, _THREE, user=False)  # the user comes from the Match block
    result = cli("--config", str(factory), "exec", "n[1-3]", "--", "whoami")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.split()[-1] == sshd.user
    # as `ssh -G a1` runs it: once, %h as the config stands there (HostName is set further down)
    assert sorted(log.read_text().split()) == ["ran:a1:a1", "ran:a2:a2", "ran:a3:a3"]


def test_an_include_inside_a_match_exec_block_runs_the_command_once(isolated_home, tmp_path):
    """The include's blocks are evaluated by several lookups (Match results fixed where they stand): still once."""
    log = tmp_path / "ran.log"
    write_user_ssh_config(isolated_home, "Host a*\n  HostName 10.1.2.3\n", "inc.conf")
    write_user_ssh_config(isolated_home, f'Match exec "echo ran:%n >> {log}"\n  Include inc.conf\n  Port 2222\n')
    target = resolve(NodeSpec("n1", "a1"))
    assert (target.host, target.port) == ("10.1.2.3", 2222)
    assert log.read_text().split() == ["ran:a1"]


def test_a_host_with_a_shell_command_runs_nothing(cli, isolated_home, sshd, known_hosts, tmp_path):
    log, planted = tmp_path / "ran.log", tmp_path / "planted"
    write_user_ssh_config(isolated_home, f'Match exec "echo ran:%h >> {log}; false"\n  User nobody-at-all\n')
    nodes = f'  n1: {{host: "127.0.0.1$(touch {planted})"}}\n'
    result = cli("--config", str(_factory(tmp_path, sshd, known_hosts, nodes)), "exec", "n1", "--", "true")
    assert not planted.exists()
    assert not log.exists()
    assert result.exit_code == ExitCode.CONFIG
    assert "`nodes.n1.host`: must be a host name or an address" in result.stderr
    assert "a `Match exec` in ~/.ssh/config would pass it to a shell command." in result.stderr


@pytest.mark.parametrize("host", ["a1$(touch {planted})", "a1;touch {planted}", "-oX=`touch {planted}`"])
def test_a_node_spec_built_with_such_a_host_is_refused_where_it_is_looked_up(isolated_home, tmp_path, host):
    planted = tmp_path / "planted"
    write_user_ssh_config(isolated_home, 'Match exec "echo %h %n >/dev/null"\n  User x\n')
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", host.format(planted=planted)))
    assert caught.value.message.startswith("node n1: `host` must be a host name or an address")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert not planted.exists()


def test_a_match_exec_command_gets_no_stdin(isolated_home, tmp_path):
    """As ssh runs it (stdin /dev/null): `factoryctl exec -n` in a `while read` loop keeps the rest of the list."""
    seen = tmp_path / "seen"
    write_user_ssh_config(isolated_home, f'Match exec "cat > {seen}; true"\n  Port 2222\n')
    script = (
        "import sys\n"
        "from factoryctl.model.inventory import NodeSpec\n"
        "from factoryctl.transport.ssh_config import resolve\n"
        "print(resolve(NodeSpec('n1', 'a1')).port, sys.stdin.read().split())\n"
    )
    env = {**os.environ, "HOME": str(isolated_home)}
    done = subprocess.run(
        [sys.executable, "-c", script], input="gpu02\ngpu03\n", capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2222 ['gpu02', 'gpu03']"
    assert seen.read_text() == ""


def test_a_shell_that_cannot_run_makes_the_block_not_match(
    cli, isolated_home, sshd, known_hosts, tmp_path, monkeypatch
):
    """As ssh (`Shell "..." is not executable`): it was a config error, `cannot read SSH config`, exit 3."""
    write_user_ssh_config(isolated_home, 'Match exec "true"\n  User nobody-at-all\nHost a*\n  HostName 127.0.0.1\n')
    monkeypatch.setenv("SHELL", str(tmp_path / "no-such-shell"))
    result = cli("--config", str(_factory(tmp_path, sshd, known_hosts, _THREE, user=False)), "exec", "n1", "--", "true")
    assert result.exit_code == ExitCode.OK, result.stderr  # not as nobody-at-all: the block did not match
    assert (
        f"factoryctl: Match exec: cannot run {tmp_path / 'no-such-shell'}: No such file or directory" in result.stderr
    )
