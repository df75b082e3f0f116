"""yes/no options of ~/.ssh/config (IdentitiesOnly, HashKnownHosts) with another value are config errors (exit 3).

ssh refuses such a file (`line 6: unsupported option "maybe".`); `IdentitiesOnly maybe` used to be read as `no`
without a word, offering every ssh-agent key where the user meant to offer one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from user_ssh_config import write_user_ssh_config

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve


@pytest.mark.parametrize("keyword", ["IdentitiesOnly", "HashKnownHosts"])
def test_a_flag_that_is_not_yes_or_no_is_a_config_error_naming_file_and_line(isolated_home: Path, keyword: str) -> None:
    path = write_user_ssh_config(isolated_home, f"Host gpu01\n  HostName 127.0.0.1\n  {keyword} maybe\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "gpu01"))
    assert (
        caught.value.message == f"{path}, line 3: {keyword} 'maybe' for host gpu01 is not yes or no "
        "(ssh refuses it too: unsupported option)."
    )
    assert caught.value.hint == f"write `{keyword} yes` or `{keyword} no`."


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("TRUE", True), ("No", False), ("false", False)])
def test_ssh_s_spellings_of_yes_and_no_are_read(isolated_home: Path, value: str, expected: bool) -> None:
    write_user_ssh_config(isolated_home, f"Host gpu01\n  IdentitiesOnly {value}\n  HashKnownHosts {value}\n")
    target = resolve(NodeSpec("n1", "gpu01"))
    assert (target.identities_only, target.hash_known_hosts) == (expected, expected)


def test_a_jump_hosts_bad_flag_is_named_with_its_host(isolated_home: Path) -> None:
    path = write_user_ssh_config(
        isolated_home, "Host gpu01\n  ProxyJump bastion\nHost bastion\n  IdentitiesOnly maybe\n"
    )
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "gpu01"))
    assert caught.value.message.startswith(f"{path}, line 4: IdentitiesOnly 'maybe' for host bastion ")


def test_exec_ends_with_exit_3(cli: Any, isolated_home: Path, tmp_path: Path) -> None:
    path = write_user_ssh_config(
        isolated_home, "Host gpu01\n  HostName 127.0.0.1\n  Port 1\n  User root\n\n  IdentitiesOnly maybe\n"
    )
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nnodes:\n  n1: {host: gpu01}\n")
    r = cli("--config", str(factory), "exec", "n1", "--", "true")
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    assert f"{path}, line 6: IdentitiesOnly 'maybe' for host gpu01 is not yes or no" in r.stderr


@pytest.mark.parametrize(("value", "expected"), [("yes # only the key below", True), ("no  #", False), ("yes#c", None)])
def test_a_trailing_comment_is_read_as_ssh_reads_it(isolated_home: Path, value: str, expected: bool | None) -> None:
    """`ssh -G` reads `IdentitiesOnly yes # why` as yes and refuses `yes#why`; the comment was read as the value."""
    write_user_ssh_config(isolated_home, f"Host gpu01\n  HostName 127.0.0.1\n  IdentitiesOnly {value}\n")
    if expected is None:
        with pytest.raises(ConfigError):
            resolve(NodeSpec("n1", "gpu01"))
    else:
        assert resolve(NodeSpec("n1", "gpu01")).identities_only is expected
