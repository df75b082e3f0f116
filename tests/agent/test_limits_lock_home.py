"""A real node's limits lock, when not under /run, is in the user's home: a place no other local user can plant.

Root's fallback (when /run cannot hold its lock) and every other user's lock were under `/tmp/factoryctl-<uid>/`, which
any local user could create first: root's changes were then refused until someone removed it (docs/security.md).
The lock is now `<home>/.local/state/factoryctl/<hostname>/gpu-limits.lock`, the home taken from the user database so
a cron job and a login (different environments) agree, the host name keeping nodes that share an NFS home apart.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.agent.limits_lock import (
    LimitsLock,
    LimitsLockError,
    LimitsLockTimeout,
    home_lock_directory,
    host_label,
    real_node_lock_path,
)

LOCK_NAME = "gpu-limits.lock"


def _in_home(user: pwd.struct_passwd) -> Path:
    return Path(user.pw_dir) / ".local" / "state" / "factoryctl" / host_label(os.uname().nodename) / LOCK_NAME


def test_no_lock_of_a_real_node_is_where_another_user_could_plant_it() -> None:
    other = next(user for user in pwd.getpwall() if user.pw_uid != 0)
    roots = real_node_lock_path(0, run_can_hold=lambda directory: False)
    others = real_node_lock_path(other.pw_uid, run_can_hold=lambda directory: True)
    assert roots == _in_home(pwd.getpwuid(0))
    assert others == _in_home(other)
    assert not {roots.parts[1], others.parts[1]} & {"tmp", "var", "dev"}


PRINT_PATH = "from factoryctl.agent.limits_lock import real_node_lock_path as p; print(p(None, lambda d: False))"


def test_a_cron_job_and_a_login_find_the_same_lock() -> None:
    """Neither $HOME nor the XDG directories (a login has them, a cron job or the SSH agent's `env -i` not) move it."""
    bare = {"PATH": os.environ["PATH"]}
    login = {
        **bare,
        "HOME": "/nowhere/else",
        "XDG_RUNTIME_DIR": "/run/user/4242",
        "XDG_STATE_HOME": "/nowhere/state",
        "HOSTNAME": "not-this-node",
    }
    found = [
        subprocess.run(
            [sys.executable, "-c", PRINT_PATH], env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for env in (bare, login)
    ]
    assert found[0] == found[1] == str(_in_home(pwd.getpwuid(os.geteuid())))


@pytest.mark.parametrize(
    ("nodename", "label"),
    [("gpu01.example.org", "gpu01.example.org"), ("a/b c", "a_b_c"), ("..", "_"), (".hidden", "hidden"), ("", "_")],
)
def test_the_host_name_is_one_safe_path_component(nodename: str, label: str) -> None:
    assert host_label(nodename) == label


def test_a_user_the_user_database_does_not_know_is_refused_with_why() -> None:
    unknown = max(user.pw_uid for user in pwd.getpwall()) + 4242
    lock = LimitsLock(None, private=True, locate=lambda: real_node_lock_path(unknown))
    with pytest.raises(LimitsLockError, match=f"uid {unknown} has no entry in the user database"), lock.held(0):
        pass


def test_the_missing_directories_in_the_home_are_made_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    path = home / ".local" / "state" / "factoryctl" / "gpu01" / LOCK_NAME
    with (
        LimitsLock(path, private=True).held(timeout_s=1),
        pytest.raises(LimitsLockTimeout),
        LimitsLock(path, private=True).held(timeout_s=0),
    ):
        pass  # really held
    made = [home.joinpath(*path.relative_to(home).parts[:depth]) for depth in range(1, 5)]  # .local ... gpu01
    assert {stat.S_IMODE(d.stat().st_mode) for d in made} == {0o700}, made


def test_a_home_others_can_write_is_refused_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)  # another user could move the lock's directory away and make another
    path = home / "factoryctl" / LOCK_NAME
    with (
        pytest.raises(LimitsLockError, match=f"inside {home}, which is writable by others without the sticky bit"),
        LimitsLock(path, private=True).held(timeout_s=1),
    ):
        pass
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_of_another_user_above_the_lock_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, 65534, 65534)
    path = home / "factoryctl" / LOCK_NAME
    with pytest.raises(LimitsLockError, match="belongs to uid 65534"), LimitsLock(path, private=True).held(1):
        pass


def test_a_home_reached_through_a_link_or_a_sticky_directory_is_fine(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: others cannot move what is ours
    (shared / "real-home").mkdir(mode=0o700)
    (tmp_path / "home").symlink_to(shared / "real-home")  # like /home -> /export/home
    with LimitsLock(tmp_path / "home" / "factoryctl" / LOCK_NAME, private=True).held(timeout_s=1):
        assert (shared / "real-home" / "factoryctl" / LOCK_NAME).exists()


def test_the_home_lock_directory_is_the_user_databases_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nowhere/else")
    assert home_lock_directory(os.geteuid()) == _in_home(pwd.getpwuid(os.geteuid())).parent
