"""The state directory, the store and the controller lock are private when factoryctl creates them.

Under the usual umask (022) the store was created world-readable (directory 0755, files 0644), and the lock was
opened with `open(..., "a+")` and truncated, following a symbolic link planted in a shared state directory. What
exists already keeps its mode: an operator may have given a group read access (docs/controller.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.errors import FactoryError
from factoryctl.store.lock import ControllerLock
from factoryctl.store.sqlite import Store


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_store_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state" / "lab"
    store = Store(state / "factory.db")
    try:
        assert mode(state) == 0o700
        assert mode(state.parent) == 0o700
        assert mode(state / "factory.db") == 0o600
        assert mode(state / "factory.db-wal") == 0o600  # SQLite gives its files the store's mode
    finally:
        store.close()


def test_an_existing_store_keeps_its_modes(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    state.mkdir(mode=0o750)
    state.chmod(0o750)
    Store(state / "factory.db").close()
    (state / "factory.db").chmod(0o640)  # an operator gave the group read access
    Store(state / "factory.db").close()
    assert mode(state) == 0o750
    assert mode(state / "factory.db") == 0o640


def test_a_new_lock_is_private(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    lock = ControllerLock(state)
    lock.acquire()
    try:
        assert mode(state) == 0o700
        assert mode(lock.path) == 0o600
        assert lock.path.read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    state = tmp_path / "lab"
    state.mkdir()
    (state / "controller.lock").symlink_to(precious)
    lock = ControllerLock(state)
    with pytest.raises(FactoryError) as caught:
        lock.acquire()
    assert precious.read_text() == "keep me\n"
    assert (
        caught.value.message
        == f"the controller lock {state / 'controller.lock'} is a symbolic link; it is not followed."
    )


def test_a_state_dir_first_made_by_a_simulated_node_is_private_too(tmp_path, cli):
    """A local simulated node's state (`<state_dir>/sim`) was often what created the state directory, 0755."""
    import stat

    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: lab\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{gpus: 1}}}}\n")
    assert cli("--config", str(config), "gpus", "n1").exit_code == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
