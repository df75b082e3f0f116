"""Simulated node state is never kept where another user could point it: no links followed, no other user's dirs.

The security review planted, in a sticky shared `state_dir`, a symbolic link at `<state_dir>/sim` to a directory of
nobody's holding `<node>.lock -> /elsewhere/root_made_this`: an agent run by root created that file, and the node's
JSON, where nobody chose. The state dir and the node's directory must be real directories of this user or root,
writable by nobody else (unless sticky), and no state file is opened through a link (factoryctl.sim.storage).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nonroot import NOBODY, give_to_non_root

from factoryctl.sim.state import SimNode
from factoryctl.sim.storage import UnsafeStateDirectory, state_path

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="another user's files: the tests do not run as root")


def shared_state_dir(tmp_path: Path) -> Path:
    """A `state_dir` anyone may create in, as /tmp: sticky and world-writable."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def test_a_link_at_the_sim_directory_is_refused_and_nothing_is_made_where_it_points(tmp_path: Path) -> None:
    shared, chosen = shared_state_dir(tmp_path), tmp_path / "chosen"
    chosen.mkdir()
    (shared / "sim").symlink_to(chosen)
    with pytest.raises(UnsafeStateDirectory, match=r"/shared/sim is a symbolic link: simulated GPU state is not kept"):
        SimNode(shared / "sim", "w1", factory="lab", gpus=1)
    assert list(chosen.iterdir()) == []


def test_a_link_at_the_nodes_directory_is_refused(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "lab").symlink_to(chosen)
    with pytest.raises(UnsafeStateDirectory, match="/sim/lab is a symbolic link"):
        SimNode(tmp_path / "sim", "w1", factory="lab", gpus=1)
    assert list(chosen.iterdir()) == []


def test_a_link_at_the_lock_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "made_through_the_link"
    lock = state_path(tmp_path / "sim", "lab", "w1").with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(target)
    with pytest.raises(UnsafeStateDirectory, match=r"w1\.lock is a symbolic link: not followed"):
        SimNode(tmp_path / "sim", "w1", factory="lab", gpus=1)
    assert not target.exists()


def test_a_link_at_the_state_file_is_neither_read_nor_written_through(tmp_path: Path) -> None:
    SimNode(tmp_path / "elsewhere", "w1", factory="lab", gpus=2).set_power_limit(1, 300)
    other = state_path(tmp_path / "elsewhere", "lab", "w1")
    before = other.read_bytes()
    path = state_path(tmp_path / "sim", "lab", "w1")
    path.parent.mkdir(parents=True)
    path.symlink_to(other)
    node = SimNode(tmp_path / "sim", "w1", factory="lab", gpus=2)
    node.set_power_limit(0, 400)
    assert other.read_bytes() == before  # the linked file is neither changed nor read: limits start afresh
    assert node.reading(1).limit_w == 700.0
    assert not path.is_symlink()
    assert json.loads(path.read_text())["gpus"][0]["limit_w"] == 400


def test_a_sim_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir(mode=0o777)
    (tmp_path / "sim").chmod(0o777)
    with pytest.raises(UnsafeStateDirectory, match="is writable by others without the sticky bit"):
        SimNode(tmp_path / "sim", "w1", factory="lab", gpus=1)


@as_root
def test_roots_node_refuses_a_sim_directory_nobody_made_in_a_shared_state_dir(tmp_path: Path) -> None:
    shared = shared_state_dir(tmp_path)
    planted = shared / "sim"
    (planted / "lab").mkdir(parents=True)
    give_to_non_root(planted, planted / "lab")
    with pytest.raises(UnsafeStateDirectory, match=f"belongs to uid {NOBODY}"):
        SimNode(planted, "w1", factory="lab", gpus=1)
    assert list((planted / "lab").iterdir()) == []


@as_root
def test_a_link_nobody_planted_in_roots_own_state_is_not_followed(tmp_path: Path) -> None:
    shared, target = shared_state_dir(tmp_path), tmp_path / "root_made_this"
    SimNode(shared / "sim", "w1", factory="lab", gpus=1)
    lock = state_path(shared / "sim", "lab", "w1").with_suffix(".lock")
    lock.unlink()
    lock.symlink_to(target)
    os.lchown(lock, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDirectory, match="is a symbolic link"):
        SimNode(shared / "sim", "w1", factory="lab", gpus=1)
    assert not target.exists()
