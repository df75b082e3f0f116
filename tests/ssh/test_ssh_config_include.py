"""`Include` in ~/.ssh/config, read as OpenSSH reads it (ssh_config(5)), with real files.

Relative paths are under ~/.ssh, globs are expanded in sorted order, an Include inside a Host or Match block applies
only where that block does (and the lines after it go back to that block), a pattern that matches nothing is no
error while a file that cannot be read is one, and files nest at most 16 deep. Errors name the file and line.
Checked against `ssh -G` where the client is installed, and end to end through the real sshd.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_config_files import MAX_INCLUDE_DEPTH


def _ssh_dir(home: Path) -> Path:
    ssh_dir = home / ".ssh"
    (ssh_dir / "config.d").mkdir(parents=True, exist_ok=True)
    return ssh_dir


def _resolve(alias: str) -> tuple[str, int, str]:
    target = resolve(NodeSpec("n1", alias))
    return target.host, target.port, target.user


def test_an_included_host_block_is_used_as_ssh_uses_it(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "b.conf").write_text("Host b1 b2 b3\n  HostName 10.0.0.2\n  Port 2201\n  User ops\n")
    (ssh_dir / "config").write_text(f"Include {ssh_dir}/config.d/*.conf\nHost *\n  User fallback\n")
    assert _resolve("b2") == ("10.0.0.2", 2201, "ops")
    assert _resolve("other") == ("other", 22, "fallback")


def test_relative_paths_are_under_dot_ssh_and_globs_are_read_in_sorted_order(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "20-late.conf").write_text("Host gpu*\n  HostName late\n  Port 2020\n")
    (ssh_dir / "config.d" / "10-early.conf").write_text("Host gpu*\n  HostName early\n")
    (ssh_dir / "config").write_text("Include config.d/*.conf\n")
    assert _resolve("gpu01") == ("early", 2020, _resolve("x")[2])  # first value wins: 10-early before 20-late


def test_an_include_inside_a_host_block_applies_only_to_that_block(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "inner").write_text(
        "User inner\n"  # no Host line yet: part of the including block
        "Host a2\n  HostName a2.inner\n"  # only for hosts matching both a* and a2
        "Host zz\n  HostName zz.inner\n"  # never: zz does not match a*
    )
    (ssh_dir / "config").write_text(
        "Host a*\n  Include config.d/inner\n  Port 1111\n"  # Port 1111: back in `Host a*` after the Include
        "Host *\n  Port 2222\n  User outer\n"
    )
    assert _resolve("a1") == ("a1", 1111, "inner")
    assert _resolve("a2") == ("a2.inner", 1111, "inner")
    assert _resolve("zz") == ("zz", 2222, "outer")


def test_an_include_inside_a_match_block_applies_only_where_it_matches(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "m").write_text("User m-user\nHost mx\n  HostName mx.inner\n")
    (ssh_dir / "config").write_text("Match originalhost m*\n  Include config.d/m\n  Port 4444\n")
    assert _resolve("mx") == ("mx.inner", 4444, "m-user")
    assert _resolve("m1")[1:] == (4444, "m-user")
    assert _resolve("q")[1] == 22


def test_a_match_host_block_keeps_its_result_after_an_include_that_changes_the_hostname(isolated_home):
    """OpenSSH evaluates `Match host` once, where it stands: the HostName set inside does not undo it."""
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "inner").write_text("Host other\n  User x\nHost gpu01\n  User inner\n")
    (ssh_dir / "config").write_text(
        "Match host gpu*\n  HostName 10.0.0.9\n  Include config.d/inner\n  ProxyJump bastion:2200\n"
    )
    target = resolve(NodeSpec("n1", "gpu01"))
    assert (target.host, target.user) == ("10.0.0.9", "inner")
    assert target.jump is not None  # the jump host is not lost: no direct connection around it
    assert (target.jump.host, target.jump.port) == ("bastion", 2200)


def test_a_pattern_matching_nothing_and_a_directory_are_skipped(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "adir.conf").mkdir()
    (ssh_dir / "config").write_text(
        "Include config.d/*.missing /nonexistent/file config.d/*.conf\nHost h\n  HostName h.example\n"
    )
    assert _resolve("h")[0] == "h.example"


def test_an_included_file_that_cannot_be_read_is_a_config_error_naming_the_include_line(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "loop.conf").symlink_to("loop.conf")  # unreadable even for root: ELOOP
    (ssh_dir / "config").write_text("# nodes\nInclude config.d/*.conf\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "h"))
    message = caught.value.message
    assert message.startswith(f"{ssh_dir / 'config'}, line 2: cannot read the included file ")
    assert "loop.conf: Too many levels of symbolic links." in message
    assert caught.value.hint


def test_includes_nest_16_deep_and_a_file_including_itself_is_an_error(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    for level in range(MAX_INCLUDE_DEPTH):
        (ssh_dir / f"level{level}").write_text(f"Include level{level + 1}\n")
    (ssh_dir / f"level{MAX_INCLUDE_DEPTH}").write_text("Host deep\n  HostName deep.example\n")
    (ssh_dir / "config").write_text("Include level1\n")  # config is depth 0, level16 is depth 16: allowed
    assert _resolve("deep")[0] == "deep.example"
    (ssh_dir / "config").write_text("Include level0\n")  # one more: depth 17
    with pytest.raises(ConfigError, match=r"level15, line 1: Include nests files more than 16 deep"):
        resolve(NodeSpec("n1", "deep"))
    (ssh_dir / "config").write_text("Include config\n")
    with pytest.raises(ConfigError, match=r"config, line 1: Include nests files more than 16 deep") as caught:
        resolve(NodeSpec("n1", "x"))
    assert "includes itself" in caught.value.hint


def test_a_bad_value_in_an_included_file_names_that_file_and_line(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    included = ssh_dir / "config.d" / "b.conf"
    included.write_text("# b\nHost b1\n  Port abc\n")
    (ssh_dir / "config").write_text("Host x\n  Port 2\nHost *\n  Include config.d/b.conf\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "b1"))
    assert caught.value.message.startswith(f"{included}, line 3: Port 'abc' for host b1 ")
    included.write_text("Host b1\n  Port\n")
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "b1"))
    assert caught.value.message.startswith(f"{included}, line 2: cannot read SSH config: unparsable line 'Port'")


def test_a_changed_included_file_is_read_again(isolated_home):
    ssh_dir = _ssh_dir(isolated_home)
    included = ssh_dir / "config.d" / "b.conf"
    included.write_text("Host b1\n  HostName first\n")
    (ssh_dir / "config").write_text("Include config.d/*.conf\n")
    assert _resolve("b1")[0] == "first"
    included.write_text("Host b1\n  HostName second\n")
    (ssh_dir / "config.d" / "a.conf").write_text("Host b1\n  User new\n")
    assert _resolve("b1")[::2] == ("second", "new")


SSH = shutil.which("ssh")
HOSTS = ["a1", "a2", "ab", "b1", "c", "d2", "g1", "g2", "m1", "mx", "q"]


@pytest.mark.skipif(SSH is None, reason="needs the OpenSSH client to compare with `ssh -G`")
def test_resolution_agrees_with_ssh_dash_g(tmp_path):
    """Nested includes in Host and Match blocks, globs and first-wins order, as `ssh -F FILE -G HOST` sees them.

    Absolute paths: ssh reads relative ones under the passwd entry's home, not $HOME.
    """
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1.conf").write_text("Host d1\n  HostName d1.inner\nHost d2\n  User d2user\n")
    (tmp_path / "d" / "2.conf").write_text("Port 2002\n")
    (tmp_path / "first").write_text("HostName first.top\nHost ab\n  User abuser\nHost c\n  User never\n")
    (tmp_path / "second").write_text(f"Port 3003\nHost a2\n  Include {tmp_path}/third\n")
    (tmp_path / "third").write_text("User third\nMatch all\n  HostName third-all\n")
    (tmp_path / "inm").write_text("HostName m-host\nHost mx\n  User mxuser\n")
    (tmp_path / "gpu").write_text("HostName 10.0.0.9\nHost g1\n  User g1user\n")
    config = tmp_path / "config"
    config.write_text(
        f"Host a*\n  Include {tmp_path}/first {tmp_path}/second\n  User after-a\n"
        f"Include {tmp_path}/d/*.conf\n"  # inside `Host a*` too: Include is not a block of its own
        f"Match originalhost m*\n  Include {tmp_path}/inm\n  Port 4444\n"
        f"Match host g*\n  Include {tmp_path}/gpu\n  Port 5555\n"  # evaluated once, before HostName 10.0.0.9
        f"Host *\n  Include {tmp_path}/d/*.conf\n  HostName fallback\n  User everyone\n"
    )
    for alias in HOSTS:
        shown = subprocess.run([str(SSH), "-F", str(config), "-G", alias], capture_output=True, text=True, check=True)
        expected = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
        target = resolve(NodeSpec("n1", alias), config)
        assert (target.host, str(target.port), target.user) == (
            expected["hostname"],
            expected["port"],
            expected["user"],
        ), alias


def test_exec_reaches_a_node_whose_host_block_is_included(cli, isolated_home, sshd, known_hosts, tmp_path):
    """The review's case: `Host b1 b2 b3` moved to ~/.ssh/config.d/b.conf, `Include` first in ~/.ssh/config."""
    ssh_dir = _ssh_dir(isolated_home)
    (ssh_dir / "config.d" / "b.conf").write_text(
        f"Host b1 b2 b3\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {sshd.user_key}\n"
    )
    (ssh_dir / "config").write_text(f"Include {ssh_dir}/config.d/*.conf\nHost *\n  ServerAliveInterval 30\n")
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\nssh: {{connect_timeout_s: 30, known_hosts: {known_hosts}}}\nnodes:\n  b1: {{}}\n")
    result = cli("--config", str(factory), "exec", "b1", "--", "echo", "ok")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"
    assert "cannot resolve" not in result.stderr
