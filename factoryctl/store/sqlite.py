"""The SQLite store: `Store`, composed of the store's table modules, and `open_store`.

This module is where the rest of factoryctl gets its store (`from factoryctl.store.sqlite import Store`), so the
split of the SQL into cohesive modules stays invisible to callers. Every SQL statement lives in the
`factoryctl.store` package and nowhere else, kept portable (no SQLite-only functions beyond `INSERT OR
IGNORE/REPLACE`) so a PostgreSQL store can implement the same methods later:

- `schema`: the tables, as versioned migrations keyed by `PRAGMA user_version`;
- `connection`: opening (WAL, busy timeout), migrating, transactions, sqlite3 failures as `StoreError` sentences;
- `samples`: raw sample writes, 1-minute rollups, retention (`coverage`: the time a rollup's samples cover);
- `history`: metric history and export reads across raw rows and rollups; `energy`: joules, across the same seam;
- `nodes`: node state, newest samples and drains;
- `logs`: the event log and the power audit log;
- `jobs`: the gang scheduler's jobs and its memory between passes.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.store.connection import StoreDamaged, StoreError
from factoryctl.store.energy import EnergyQueries
from factoryctl.store.jobs import JobRecords
from factoryctl.store.lock_wait import BUSY_TIMEOUT_S
from factoryctl.store.logs import EventAndAuditLog
from factoryctl.store.nodes import NodeStates
from factoryctl.store.samples import ROLLUP_LAG_MIN, SampleWrites
from factoryctl.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "ROLLUP_LAG_MIN",
    "SCHEMA_VERSION",
    "Store",
    "StoreDamaged",
    "StoreError",
    "open_store",
]


class Store(SampleWrites, EnergyQueries, NodeStates, EventAndAuditLog, JobRecords):
    """One connection to the SQLite store, safe to share between threads (calls are serialised)."""


def open_store(path: Path, readonly: bool = False) -> Store:
    """Open (creating and migrating unless `readonly`) the store at `path`."""
    return Store(path, readonly=readonly)
