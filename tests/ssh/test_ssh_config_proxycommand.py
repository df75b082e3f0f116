"""A ProxyCommand in ~/.ssh/config is refused (config error, exit 3, file and line named), never silently skipped.

factoryctl runs no ProxyCommand; connecting directly instead would go around the path the operator set (a bastion,
a VPN helper). `ProxyCommand none` means direct, and as in OpenSSH whichever of ProxyJump and ProxyCommand comes
first wins. Checked against `ssh -G` where the client is installed, and end to end through the real sshd.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from user_ssh_config import write_user_ssh_config

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve


def _refused(alias: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", alias))
    assert "ProxyJump" in caught.value.hint
    assert "ProxyCommand none" in caught.value.hint
    return caught.value


def test_a_proxycommand_is_a_config_error_naming_file_line_and_host(isolated_home):
    path = write_user_ssh_config(
        isolated_home, "# nodes\nHost pc1\n  HostName 127.0.0.1\n  ProxyCommand /bin/false %h %p\n"
    )
    error = _refused("pc1")
    assert error.message == (
        f"{path}, line 4: ProxyCommand '/bin/false %h %p' for host pc1 cannot be used: factoryctl does not run "
        "ProxyCommand, and connecting directly could bypass it."
    )
    assert error.exit_code == ExitCode.CONFIG


def test_proxycommand_none_connects_directly(isolated_home):
    write_user_ssh_config(
        isolated_home, "Host n1\n  ProxyCommand none\n  ProxyJump ignored\nHost *\n  ProxyCommand nc %h %p\n"
    )
    assert resolve(NodeSpec("n1", "n1")).jump is None  # `none` came first: neither the jump nor the command


def test_a_proxyjump_before_the_proxycommand_wins(isolated_home):
    write_user_ssh_config(isolated_home, "Host n1\n  ProxyJump bastion:2200\nHost n*\n  ProxyCommand nc %h %p\n")
    target = resolve(NodeSpec("n1", "n1"))
    assert target.jump is not None
    assert (target.jump.host, target.jump.port) == ("bastion", 2200)


def test_a_proxycommand_before_the_proxyjump_wins_and_is_refused(isolated_home):
    path = write_user_ssh_config(isolated_home, "Host *\n  ProxyCommand nc %h %p\nHost n1\n  ProxyJump bastion\n")
    assert _refused("n1").message.startswith(f"{path}, line 2: ProxyCommand 'nc %h %p' for host n1")


@pytest.mark.parametrize(
    "text",
    [
        "Host n1\n  ProxyJump none\n  ProxyCommand nc %h %p\n",  # ProxyJump none does not stop a ProxyCommand
        "Host n1\n  ProxyCommand nc %h %p\n  ProxyCommand none\n",  # first value wins (paramiko keeps the `none`)
        "Host n1\n  ProxyCommand=nc %h %p\n",
    ],
)
def test_the_proxycommand_ssh_would_run_is_refused(isolated_home, text):
    path = write_user_ssh_config(isolated_home, text)
    assert _refused("n1").message.startswith(f"{path}, line ")


def test_a_proxycommand_in_an_included_file_names_that_file(isolated_home):
    included = write_user_ssh_config(isolated_home, "Host pc*\n  ProxyCommand ssh -W %h:%p bastion\n", "pc.conf")
    write_user_ssh_config(isolated_home, "Include pc.conf\n")
    assert _refused("pc1").message.startswith(f"{included}, line 2: ")


def test_a_jump_host_with_a_proxycommand_is_refused(isolated_home):
    path = write_user_ssh_config(isolated_home, "Host n1\n  ProxyJump jh\nHost jh\n  ProxyCommand nc %h %p\n")
    error = _refused("n1")
    assert error.message.startswith(f"{path}, line 4: ProxyCommand 'nc %h %p' for host jh ")


SSH = shutil.which("ssh")
CASES = [
    "Host h\n ProxyCommand nc %h %p\n ProxyJump j1\n",
    "Host h\n ProxyJump j1\n ProxyCommand nc %h %p\n",
    "Host h\n ProxyCommand none\n ProxyJump j1\n",
    "Host h\n ProxyJump none\n ProxyCommand nc %h %p\n",
    "Host h\n ProxyJump none\n ProxyJump j1\n ProxyCommand nc %h %p\n",
    "Host h\n ProxyCommand nc\n ProxyCommand none\n",
    "Host h\n ProxyJump j1\n ProxyCommand none\n",
    "Host !h\n ProxyCommand none\nHost h*\n ProxyCommand nc\n",
]


@pytest.mark.skipif(SSH is None, reason="needs the OpenSSH client to compare with `ssh -G`")
@pytest.mark.parametrize("text", CASES)
def test_which_of_proxyjump_and_proxycommand_applies_agrees_with_ssh_dash_g(tmp_path, text):
    config = tmp_path / "config"
    config.write_text(text)
    shown = subprocess.run([str(SSH), "-F", str(config), "-G", "h"], capture_output=True, text=True, check=True)
    expected = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    if "proxycommand" in expected:
        with pytest.raises(ConfigError, match="ProxyCommand"):
            resolve(NodeSpec("n1", "h"), config)
        return
    target = resolve(NodeSpec("n1", "h"), config)
    assert (target.jump.host if target.jump else None) == expected.get("proxyjump")


def test_exec_refuses_a_node_with_a_proxycommand_and_runs_the_others(cli, isolated_home, sshd, known_hosts, tmp_path):
    """The review's case: the node used to be reached directly, going around its ProxyCommand."""
    path = write_user_ssh_config(
        isolated_home,
        f"Host pc1\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.user_key}\n"
        "  ProxyCommand /bin/false %h %p\n",
    )
    factory = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  good: {host: 127.0.0.1}\n  pc1: {}\n")
    result = cli("--config", factory, "exec", "all", "--", "echo", "reached")
    assert result.exit_code == ExitCode.CONFIG, result.stderr
    assert result.stdout.count("reached") == 1  # `good` ran; pc1 did not connect around its ProxyCommand
    assert f"pc1: {path}, line 6: ProxyCommand '/bin/false %h %p' for host pc1 cannot be used" in result.stderr
    assert "hint: use ProxyJump instead" in result.stderr
