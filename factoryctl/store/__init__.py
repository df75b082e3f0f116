"""The factory's history store: samples and rollups, node drain state, events, the power audit log and jobs.

This package owns every SQL statement (kept portable, so a PostgreSQL store is a later step).
`factoryctl.store.sqlite` composes `Store` from the table modules (`schema`, `connection`, `samples`, `history`,
`nodes`, `logs`, `jobs`); `factoryctl.store.rows` turns telemetry snapshots into the store's narrow integer rows and back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factoryctl.store.sqlite import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]


def __getattr__(name: str) -> object:
    """Export lazily (PEP 562), so importing the package costs nothing until the store is used."""
    if name in __all__:
        from factoryctl.store import sqlite

        return getattr(sqlite, name)
    raise AttributeError(name)
