"""A store file deleted (or replaced) under an open dashboard: its drains go to the file others read, never the old one.

SQLite keeps writing the inode it opened: after `rm factory.db factory.db-wal factory.db-shm`, a drain from the
dashboard was shown as done (notification, header, event) but `factoryctl nodes list` and the scheduler never saw it,
and it vanished once a controller created a new store. Real SQLite files, really deleted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.store import open_store


@pytest.fixture
def config(tmp_path: Path) -> FactoryConfig:
    return demo_config(tmp_path / "state")


def _delete_store(config: FactoryConfig) -> None:
    path = config.store_path
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        name.unlink(missing_ok=True)


def _drained_on_disk(config: FactoryConfig) -> set[str]:
    """What `factoryctl nodes list` and the scheduler read: the file at the store's path now."""
    store = open_store(config.store_path)
    try:
        return set(store.drained_nodes())
    finally:
        store.close()


def test_the_embedded_collector_drains_into_the_store_file_there_now(config: FactoryConfig) -> None:
    services = PolledServices(config, "demo01")  # no controller: the dashboard's own collector (not started)
    try:
        assert services.persistent
        _delete_store(config)
        services.drain("demo01", "bad fan")
        assert _drained_on_disk(config) == {"demo01"}
        snapshot = services.snapshot()
        assert snapshot.drained == frozenset({"demo01"})
        said = [e.message for e in snapshot.events if e.kind == "store"]
        assert len(said) == 1
        assert f"the store {config.store_path} was deleted under this dashboard" in said[0]
        services.resume("demo01")
        assert _drained_on_disk(config) == set()
    finally:
        services.close()


def test_a_replaced_store_file_is_the_one_drained(config: FactoryConfig) -> None:
    services = PolledServices(config, "demo01", use_store=True)
    try:
        path = config.store_path
        path.rename(path.with_name("factory.db.old"))  # a backup moved into place of the running store
        open_store(path).close()
        services.drain("demo01", "swap")
        assert _drained_on_disk(config) == {"demo01"}
    finally:
        services.close()


def test_the_controller_store_reader_drains_into_the_file_there_now(config: FactoryConfig) -> None:
    open_store(config.store_path).close()
    services = StoreServices(config, "demo01")
    try:
        _delete_store(config)
        services.drain("demo01", "bad fan")
        assert _drained_on_disk(config) == {"demo01"}
        snapshot = services.snapshot()
        assert snapshot.drained == frozenset({"demo01"})
        assert any("was deleted under this dashboard" in e.message for e in snapshot.events)
    finally:
        services.close()
