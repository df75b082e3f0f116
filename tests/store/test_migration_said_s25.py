"""A store migrated to the current schema says so and keeps a `store_migrated` event (store/migration_said.py).

From a migration on, every older factoryctl sharing the store refuses it; the migration used to print and record
nothing, so nobody could tell when that began.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from factoryctl.store.schema import MIGRATIONS, SCHEMA_VERSION

CONFIG = "name: mig25\nstate_dir: st\nnodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 2}\n"


def old_store(path: Path, version: int) -> None:
    """A store as a factoryctl of schema `version` left it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    for number in range(version):
        db.executescript(MIGRATIONS[number])
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    path.chmod(0o600)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "factory.yaml").write_text(CONFIG)
    return tmp_path / "factory.yaml"


def kinds(cli: Callable[..., object], config: Path) -> list[dict[str, object]]:
    result = cli("-c", str(config), "events", "--since", "1h", "-o", "json")
    return [e for e in json.loads(result.stdout)["items"] if e["kind"] == "store_migrated"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [1, 3])
def test_a_migration_is_a_note_and_an_event(cli, config: Path, version: int) -> None:
    store = config.parent / "st" / "factory.db"
    old_store(store, version)
    result = cli("-c", str(config), "nodes", "drain", "n1", "--reason", "r")
    assert result.exit_code == 0, result.stderr
    said = f"note: migrated the store at {store} from schema {version} to {SCHEMA_VERSION}"
    assert result.stderr.count(said) == 1
    events = kinds(cli, config)
    assert len(events) == 1
    assert events[0]["severity"] == "warning"
    assert f"from schema {version} to {SCHEMA_VERSION}" in str(events[0]["message"])
    again = cli("-c", str(config), "nodes", "drain", "n1", "--reason", "r2")
    assert "migrated" not in again.stderr  # once: the store is current now
    assert len(kinds(cli, config)) == 1


def test_quiet_drops_the_note_but_not_the_event(cli, config: Path) -> None:
    old_store(config.parent / "st" / "factory.db", 3)
    result = cli("-q", "-c", str(config), "nodes", "drain", "n1", "--reason", "r")
    assert result.exit_code == 0, result.stderr
    assert "migrated" not in result.stderr
    assert len(kinds(cli, config)) == 1


def test_a_new_store_is_not_a_migration(cli, config: Path) -> None:
    result = cli("-c", str(config), "nodes", "drain", "n1", "--reason", "r")
    assert result.exit_code == 0, result.stderr
    assert "migrated" not in result.stderr
    assert kinds(cli, config) == []


def test_events_kind_offers_the_migration_event():
    """The kind the store records is one `events --kind` takes (it was refused with exit 2)."""
    from factoryctl.cli.events import EVENT_KINDS
    from factoryctl.store.migration_said import KIND

    assert KIND in EVENT_KINDS
