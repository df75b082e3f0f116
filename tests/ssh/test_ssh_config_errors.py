"""A ~/.ssh/config factoryctl cannot use is a config error (exit 3) naming file, line and host, never a raw error."""

from __future__ import annotations

import pytest
from user_ssh_config import write_user_ssh_config

from factoryctl.errors import ConfigError, ExitCode, NodeError, UsageError, most_severe
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.fanout import as_node_error, fan_out
from factoryctl.transport.ssh_config import resolve


def test_bad_proxyjump_port_ends_exec_with_exit_3_naming_file_line_and_host(
    cli, isolated_home, sshd, known_hosts, tmp_path
):
    path = write_user_ssh_config(isolated_home, "Host badnode\n  HostName 127.0.0.1\n  ProxyJump jumper:2x2\n")
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  good: {host: 127.0.0.1}\n  badnode: {}\n")
    r = cli("--config", config, "exec", "all", "--", "true")
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    assert f"{path}, line 3: ProxyJump 'jumper:2x2' for host badnode" in r.stderr
    assert "'2x2'" in r.stderr
    assert "[user@]host[:port]" in r.stderr  # the hint
    assert "ValueError" not in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ProxyJump jumper:2x2", "has a port that is not a number from 1 to 65535: '2x2'"),
        ("ProxyJump ops@[::1]:0", "has a port that is not a number from 1 to 65535: '0'"),
        ("ProxyJump a,,b", "has an empty hop"),
        ("ProxyJump bad:x,jumper", "has a port that is not a number from 1 to 65535: 'x'"),
        ("ProxyJump ops@", "has no host in 'ops@'"),
        ("Port abc", "is not a number from 1 to 65535"),
        ("Port = 70000", "is not a number from 1 to 65535"),
    ],
)
def test_unusable_values_are_config_errors_with_their_line(isolated_home, line, problem):
    path = write_user_ssh_config(isolated_home, f"# nodes\nHost gpu01\n  HostName 127.0.0.1\n  {line}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "gpu01"))
    assert caught.value.message.startswith(f"{path}, line 4: ")
    assert "for host gpu01" in caught.value.message
    assert problem in caught.value.message
    assert caught.value.hint


def test_good_jump_chains_still_resolve(isolated_home):
    write_user_ssh_config(isolated_home, "Host gpu01\n  ProxyJump ops@bastion:2200,[::1]:2222\n")
    target = resolve(NodeSpec("n1", "gpu01"))
    assert target.jump is not None
    assert (target.jump.host, target.jump.port) == ("::1", 2222)
    assert target.jump.jump is not None
    assert (target.jump.jump.user, target.jump.jump.host, target.jump.jump.port) == ("ops", "bastion", 2200)


NODES = [NodeSpec(f"n{i}", "h") for i in range(6)]


@pytest.mark.parametrize("error", [ConfigError("bad ~/.ssh/config", "fix it"), UsageError("bad value", "fix it")])
def test_a_config_or_usage_error_on_one_node_is_its_result_and_outranks_node_failures(error):
    """The other nodes still run and keep their results (exec output, power changes to audit)."""

    def work(node: NodeSpec) -> str:
        if node.name == "n1":
            raise error
        if node.name == "n2":
            raise NodeError(node.name, "refused", "no")
        return node.name

    results = fan_out(NODES, work, fanout=1)
    assert [r if isinstance(r, str) else r.kind for _, r in results] == [
        "n0", "config" if isinstance(error, ConfigError) else "usage", "refused", "n3", "n4", "n5",
    ]  # fmt: skip
    codes = [r.exit_code for _, r in results if isinstance(r, NodeError)]
    assert most_severe(codes) == error.exit_code


def test_fan_out_still_lists_node_failures():
    def work(node: NodeSpec) -> str:
        if node.name == "n2":
            raise NodeError(node.name, "refused", "no")
        return node.name

    results = fan_out(NODES, work)
    assert [r if isinstance(r, str) else r.kind for _, r in results] == ["n0", "n1", "refused", "n3", "n4", "n5"]


def test_as_node_error_keeps_the_kind_and_exit_code_of_config_and_usage_errors():
    config = as_node_error("n1", ConfigError("bad", "hint"))
    usage = as_node_error("n1", UsageError("bad", "hint"))
    assert (config.kind, config.exit_code, config.hint) == ("config", ExitCode.CONFIG, "hint")
    assert (usage.kind, usage.exit_code) == ("usage", ExitCode.USAGE)
