"""The store is written only in a state directory no other user could plant files in, and never through a link.

In the review another user made `state_dir` 0777 with `factory.db -> /somewhere/newfile_by_root`: root's `power set`
created the store, audit log included, where the link pointed (the exclusive create failed on the link, the error was
suppressed, and SQLite followed it). Now the directory and each store file are checked before SQLite opens anything.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import Any

import pytest

from factoryctl.store.lock import ControllerLock, UnsafeStateDir
from factoryctl.store.sqlite import Store, StoreError

ROOT = os.geteuid() == 0
WHO = "not root" if ROOT else f"neither you (uid {os.geteuid()}) nor root"


def nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user `nobody` here")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def test_a_store_linked_elsewhere_is_refused_and_nothing_is_created_where_it_points(
    state: Path, tmp_path: Path
) -> None:
    chosen = tmp_path / "newfile_by_root"
    (state / "factory.db").symlink_to(chosen)
    with pytest.raises(StoreError) as caught:
        Store(state / "factory.db")
    assert caught.value.message == (
        f"{state / 'factory.db'} is a symbolic link, so writing it could write a file someone else chose; it is not "
        "opened."
    )
    assert f"`mv {state / 'factory.db'} " in str(caught.value.hint)
    assert not chosen.exists()


@pytest.mark.parametrize("name", ["factory.db-wal", "factory.db-shm"])
def test_a_linked_log_or_index_is_refused(state: Path, tmp_path: Path, name: str) -> None:
    (state / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError, match=re.escape(f"{name} is a symbolic link")):
        Store(state / "factory.db")
    assert not (tmp_path / "elsewhere").exists()


def test_a_hard_linked_store_is_refused(state: Path, tmp_path: Path) -> None:
    Store(state / "factory.db").close()
    os.link(state / "factory.db", tmp_path / "other-name")
    with pytest.raises(StoreError, match=re.escape("factory.db has 2 hard links")):
        Store(state / "factory.db")


@pytest.mark.skipif(not ROOT, reason="giving a directory to another user needs root")
def test_a_state_dir_of_another_user_is_refused(state: Path) -> None:
    os.chown(state, nobody(), -1)
    with pytest.raises(StoreError) as caught:
        Store(state / "factory.db")
    assert caught.value.message == (
        f"the state directory {state} belongs to uid {nobody()}, not root, so another user could plant links where "
        "the store is written; nothing is written there."
    )
    assert list(state.iterdir()) == []
    with pytest.raises(UnsafeStateDir):
        ControllerLock(state).acquire()
    assert list(state.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
@pytest.mark.parametrize("name", ["factory.db", "factory.db-wal", "controller.lock"])
def test_a_store_file_of_another_user_is_refused_where_anyone_may_write(state: Path, name: str) -> None:
    state.chmod(0o1777)  # like /tmp: anyone could have made it
    (state / name).touch()
    os.chown(state / name, nobody(), -1)
    with pytest.raises((StoreError, UnsafeStateDir), match=re.escape(f"{name} belongs to uid {nobody()}, {WHO}")):
        ControllerLock(state).acquire() if name == "controller.lock" else Store(state / "factory.db")


def test_a_state_dir_others_may_write_is_refused_unless_sticky(state: Path) -> None:
    state.chmod(0o777)
    with pytest.raises(StoreError, match=r"is writable by others without the sticky bit \(mode 0777\)"):
        Store(state / "factory.db")
    state.chmod(0o1777)  # like /tmp: nobody else may rename or remove what is ours
    Store(state / "factory.db").close()
    lock = ControllerLock(state)
    lock.acquire()
    lock.release()


def test_a_group_writable_state_dir_is_used_and_new_files_stay_private(state: Path) -> None:
    """docs/controller.md gives operators write access through a group: that group is trusted like the owner."""
    state.chmod(0o770)
    Store(state / "factory.db").close()
    assert (state / "factory.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not ROOT, reason="giving a directory to another user needs root")
def test_power_set_in_a_planted_state_dir_changes_nothing_and_writes_nowhere(cli: Any, tmp_path: Path) -> None:
    """The review's reproduction: another user's 0777 state_dir with `factory.db` linked to a path of their choice."""
    state, chosen = tmp_path / "state", tmp_path / "newfile_by_root"
    state.mkdir()
    state.chmod(0o777)
    (state / "factory.db").symlink_to(chosen)
    os.chown(state, nobody(), -1)
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: h100-sxm, gpus: 1}}}}\n")
    result = cli("--config", str(config), "power", "set", "n1", "--watts", "300")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"factoryctl: the state directory {state} belongs to uid {nobody()}, not root, so another user could plant "
        "links where the store is written; nothing is written there."
    )
    assert not chosen.exists()
    gpus = cli("--config", str(config), "gpus", "-o", "json")
    assert [gpu["power_limit_w"] for gpu in gpus.json()["items"]] == [700.0]  # type: ignore[index]


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_a_group_members_store_files_are_the_stores_own(state: Path) -> None:
    """docs/controller.md's shared setup: an operator's `nodes drain` made the store and its -wal while no controller
    ran; refusing them locked root's controller out, with a hint to delete the -wal's committed rows."""
    state.chmod(0o3770)  # group write and sticky, as the docs say
    store = Store(state / "factory.db")
    store.close()
    (state / "factory.db-wal").touch()
    for name in ("factory.db", "factory.db-wal"):
        os.chown(state / name, nobody(), -1)
    Store(state / "factory.db").close()
    lock = ControllerLock(state)
    lock.acquire()
    lock.release()
