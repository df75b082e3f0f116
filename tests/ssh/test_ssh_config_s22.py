"""Session 22: `Match` criteria factoryctl cannot evaluate, and a jump host lost under a running command.

paramiko counts a `Match` criterion it does not know (`localnetwork`, `tagged`, a typo, `Host` in capitals) as
matched, so its block applied to every host: a `ProxyJump bastion` under `Match localnetwork 10.99.0.0/16` routed
nodes through the bastion on any network, or looped back into the bastion itself. A jump host dropped while commands
ran through it was reported as the nodes' lost connections, with a hint about the nodes' sshd only. Real sshds.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from user_ssh_config import write_user_ssh_config
from waiting import wait_for

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve


@pytest.mark.parametrize(
    ("match", "keyword"),
    [
        ("Match localnetwork 10.99.0.0/16", "localnetwork"),
        ("Match tagged foo", "tagged"),
        ("Match bogus x", "bogus"),
        ("Match host gpu01 localnetwork 10.99.0.0/16", "localnetwork"),
        ("Match !LocalNetwork 10.0.0.0/8", "LocalNetwork"),
        ("Match host gpu01 bogus", "bogus"),
    ],
)
def test_a_match_criterion_factoryctl_cannot_evaluate_is_a_config_error_with_its_line(isolated_home, match, keyword):
    path = write_user_ssh_config(isolated_home, f"# lab\n{match}\n  ProxyJump bastion\nHost bastion\n  Port 2200\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "gpu01"))
    message = caught.value.message
    assert message.startswith(f"{path}, line 2: "), message
    assert f"`Match {keyword}`" in message
    assert "host gpu01" in message
    assert "originalhost" in caught.value.hint  # the criteria it does evaluate
    if keyword.lower() != "bogus":
        assert message.startswith(f"{path}, line 2: factoryctl does not support `Match {keyword}`")
        assert "Host block" in caught.value.hint


def test_an_unsupported_criterion_after_one_that_fails_is_never_evaluated(isolated_home):
    write_user_ssh_config(isolated_home, "Match host laptop-* localnetwork 10.99.0.0/16\n  ProxyJump bastion\n")
    target = resolve(NodeSpec("n1", "gpu01"))
    assert target.jump is None


def test_match_criteria_are_read_in_any_case_as_ssh_reads_them(isolated_home):
    write_user_ssh_config(
        isolated_home, "Match Host other\n  Port 1\nMatch HOST gpu01 !User nobody\n  Port 2200\nMatch ALL\n  User ops\n"
    )
    target = resolve(NodeSpec("n1", "gpu01"))
    assert (target.port, target.user) == (2200, "ops")


def test_an_unsupported_criterion_in_an_included_file_names_that_file(isolated_home):
    included = write_user_ssh_config(isolated_home, "Host *\n  User ops\nMatch tagged gpu\n  Port 2\n", "lab.conf")
    write_user_ssh_config(isolated_home, "Include lab.conf\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "gpu01"))
    assert caught.value.message.startswith(f"{included}, line 3: "), caught.value.message


def test_exec_through_a_localnetwork_match_is_exit_3_and_never_goes_through_the_bastion(
    cli, isolated_home, sshd, known_hosts, tmp_path
):
    path = write_user_ssh_config(isolated_home, "Match host 127.0.0.1 localnetwork 10.99.0.0/16\n  ProxyJump bastion\n")
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  gpu0[1-2]: {host: 127.0.0.1}\n")
    r = cli("--config", config, "exec", "all", "-o", "json", "--", "true")
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    errors = r.json()["errors"]
    assert [(e["node"], e["error"]) for e in errors] == [("gpu01", "config"), ("gpu02", "config")]
    assert errors[0]["message"].startswith(f"{path}, line 1: factoryctl does not support `Match localnetwork`")
    assert "bastion" not in r.stderr


def _behind_a_jump_host(home: Path, node: Any, jump: Any, known_hosts: Path, tmp_path: Path) -> str:
    """factory.yaml with nodes b1, b2: the sshd `node`, reached through the jump host `jumpy` (the sshd `jump`)."""
    write_user_ssh_config(
        home,
        f"Host behind\n  HostName 127.0.0.1\n  Port {node.port}\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n  IdentityFile {jump.user_key}\n",
    )
    jump.write_known_hosts(known_hosts)
    ssh = f"connect_timeout_s: 30, user: {node.user}, identity_file: {node.user_key}, known_hosts: {known_hosts}"
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  b[1-2]: {{host: behind}}\n")
    return str(factory)


def test_a_jump_host_lost_under_running_commands_is_named_with_its_hint(
    cli, isolated_home, sshd, sshd_factory, known_hosts, tmp_path
):
    jump = sshd_factory()
    config = _behind_a_jump_host(isolated_home, sshd, jump, known_hosts, tmp_path)
    marks, hold = tmp_path / "marks", tmp_path / "hold"
    marks.mkdir()
    hold.touch()

    def kill_jump_host_when_both_run() -> None:
        wait_for(lambda: len(list(marks.iterdir())) == 2, 60, "both commands started")
        jump.kill()

    killer = threading.Thread(target=kill_jump_host_when_both_run, daemon=True)
    killer.start()
    script = 'touch "$1/$(mktemp -u XXXXXX)"; while [ -e "$2" ]; do sleep 0.1; done'
    try:
        r = cli("--config", config, "exec", "all", "--", "sh", "-c", script, "sh", str(marks), str(hold))
    finally:
        hold.unlink()  # the commands on the node end
        killer.join(60)
    assert r.exit_code == 4, r.stderr
    said = f"b[1-2] (2): connection lost while the command ran (through jump host {jump.user}@127.0.0.1:{jump.port})"
    assert said in r.stderr, r.stderr
    hint = r.stderr.split("hint: ", 1)[1]
    assert f"jump host {jump.user}@127.0.0.1:{jump.port}" in hint, hint
    assert "and the node" in hint, hint
