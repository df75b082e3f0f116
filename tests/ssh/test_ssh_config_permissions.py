"""~/.ssh/config and the files it includes are refused, as ssh refuses them, when someone else could write them.

ssh says "Bad owner or permissions on FILE" and stops: such a file can send the connection anywhere. factoryctl
gives a config error (exit 3) naming the file (and the Include line that names it) with the fix. Which files pass is
checked against the real `ssh -G` on this machine (Debian's, which also reads a group-writable file whose group is
the owner's alone); like `ssh -F`, a config path given explicitly is not checked itself, its included files are.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh_config import resolve

IS_ROOT = os.geteuid() == 0


def _another_users_group() -> int | None:
    """A group that is the primary group of an account other than this user (so not the user's own), if any."""
    me = os.getuid()
    return next((entry.pw_gid for entry in pwd.getpwall() if entry.pw_uid != me and entry.pw_gid != 0), None)


def _configs(home: Path) -> tuple[Path, Path]:
    """~/.ssh/config including ~/.ssh/config.d/lab.conf, which sets Port 2201 for host lab."""
    ssh_dir = home / ".ssh"
    (ssh_dir / "config.d").mkdir(parents=True, exist_ok=True)
    included = ssh_dir / "config.d" / "lab.conf"
    included.write_text("Host lab\n  Port 2201\n")
    main = ssh_dir / "config"
    main.write_text("Include config.d/*.conf\nHost *\n  User ops\n")
    for path in (main, included):
        path.chmod(0o644)
    return main, included


def _ssh_reads(main: Path) -> bool | None:
    """Whether the real `ssh -G -F main lab` reads the config (None without ssh); -F: only includes are checked."""
    if shutil.which("ssh") is None:
        return None
    r = subprocess.run(["ssh", "-G", "-F", str(main), "lab"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 or "Bad owner or permissions" in r.stderr, r.stderr
    return r.returncode == 0


#: (mode, group, readable): `group` "own" keeps the file's group (root's or the user's own), "other" is another's.
CASES = [
    (0o644, "own", True),
    (0o600, "own", True),
    (0o664, "own", True),  # Debian's ssh: the group is the owner's alone
    (0o646, "own", False),
    (0o602, "own", False),
    (0o666, "own", False),
    (0o664, "other", False),
    (0o620, "other", False),
    (0o640, "other", True),
]


@pytest.mark.parametrize(("mode", "group", "readable"), CASES, ids=[f"{m:o}-{g}" for m, g, _ in CASES])
def test_an_included_file_is_refused_exactly_when_ssh_refuses_it(
    isolated_home: Path, mode: int, group: str, readable: bool
) -> None:
    main, included = _configs(isolated_home)
    if group == "other":
        gid = _another_users_group()
        if not IS_ROOT or gid is None:
            pytest.skip("needs root and another account's group to chgrp the file")
        os.chown(included, -1, gid)
    included.chmod(mode)
    ssh = _ssh_reads(main)
    assert ssh in (None, readable)
    for config_path in (None, main):  # the included file is checked whether or not the path was given
        if readable:
            assert resolve(NodeSpec("n1", "lab"), config_path).port == 2201
            continue
        with pytest.raises(ConfigError) as caught:
            resolve(NodeSpec("n1", "lab"), config_path)
        assert caught.value.exit_code == ExitCode.CONFIG
        assert caught.value.message.startswith(f"{main}, line 1: the included file {included} is writable by ")
        assert caught.value.message.endswith("ssh refuses it too (Bad owner or permissions).")
        assert caught.value.hint == f"run `chmod go-w {included}`."


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another user")
def test_an_included_file_of_another_user_is_refused(isolated_home: Path) -> None:
    main, included = _configs(isolated_home)
    os.chown(included, 65534, -1)
    assert _ssh_reads(main) in (None, False)
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "lab"))
    assert caught.value.message.startswith(
        f"{main}, line 1: the included file {included} belongs to uid 65534, not root, so someone else"
    )  # as root: not "neither you (uid 0) nor root"
    assert caught.value.hint == f"make it yours: `chown 0 {included}` (and `chmod go-w {included}`), or move it aside."


def test_the_main_config_is_refused_like_ssh_but_not_when_given_explicitly_like_ssh_f(isolated_home: Path) -> None:
    main, _ = _configs(isolated_home)
    main.chmod(0o666)
    assert _ssh_reads(main) in (None, True)  # -F: ssh does not check the file it was given
    assert resolve(NodeSpec("n1", "lab"), main).port == 2201
    with pytest.raises(ConfigError) as caught:
        resolve(NodeSpec("n1", "lab"))
    assert caught.value.message == (
        f"{main}: the SSH config is writable by others (mode 0666), so someone else could change where and as whom "
        "factoryctl connects; ssh refuses it too (Bad owner or permissions)."
    )
    main.chmod(0o600)  # fixed: read again at once, though nothing else changed
    assert resolve(NodeSpec("n1", "lab")).port == 2201


def test_exec_fails_the_nodes_with_exit_3_and_the_fix(cli, isolated_home, sshd, known_hosts, tmp_path) -> None:
    _, included = _configs(isolated_home)
    included.chmod(0o666)
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n")
    r = cli("--config", config, "exec", "all", "--", "true")
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    assert f"the included file {included} is writable by others (mode 0666)" in r.stderr
    assert f"hint: run `chmod go-w {included}`." in r.stderr
    assert "Traceback" not in r.stderr
    included.chmod(0o644)
    assert cli("--config", config, "exec", "all", "--", "true").exit_code == 0
