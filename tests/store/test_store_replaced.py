"""A store or lock file deleted or replaced under a long-lived process is noticed (SQLite itself never tells)."""

from __future__ import annotations

import os
from pathlib import Path

from factoryctl.store.lock import ControllerLock, controller_pid
from factoryctl.store.sqlite import Store


def test_store_notices_its_file_deleted_or_replaced(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    store = Store(path)
    reader = Store(path, readonly=True)
    try:
        assert store.replaced() is None
        assert reader.replaced() is None
        other = tmp_path / "restored.db"
        Store(other).close()
        os.replace(other, path)  # a restored backup moved into place
        assert store.replaced() == "replaced"
        assert reader.replaced() == "replaced"
        for leftover in tmp_path.glob("factory.db*"):
            leftover.unlink()  # rm factory.db*
        assert store.replaced() == "deleted"
    finally:
        store.close()
        reader.close()


def test_lock_names_its_pid_and_notices_its_file_deleted(tmp_path: Path) -> None:
    assert controller_pid(tmp_path) is None
    lock = ControllerLock(tmp_path)
    lock.acquire()
    try:
        assert controller_pid(tmp_path) == os.getpid()
        assert not lock.replaced()
        lock.path.unlink()
        assert lock.replaced()
        assert controller_pid(tmp_path) is None  # the file is gone: nobody can tell a controller runs
    finally:
        lock.release()
    assert not lock.replaced()  # released: nothing held to compare
