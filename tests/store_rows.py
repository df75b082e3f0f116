"""What a store file holds, read with SQLite itself: read-only, on a connection of the test's own.

Tests that check what was stored look at the file as any other reader would, never through the Store under test
(its private query method shares the connection, the caches and the error translation being tested), so what they
assert is what is on disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

#: The sample rows of one node (all its GPUs), by name.
NODE_SAMPLES_SQL = "SELECT COUNT(*) FROM sample s JOIN node n ON n.id = s.node_id WHERE n.name = ?"


def rows(db_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """The rows `sql` (with `args` for its `?`s) finds in the store at `db_path`, opened read-only."""
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return list(db.execute(sql, args).fetchall())


def value(db_path: Path, sql: str, *args: object) -> Any:
    """The one value `sql` finds (a `COUNT(*)`, a `MAX(...)`)."""
    ((found,),) = rows(db_path, sql, *args)
    return found


def event_kinds(db_path: Path, node: str | None = None) -> list[str]:
    """The kinds of the stored events (of `node`'s alone, if given), in the order the store took them."""
    if node is None:
        return [kind for (kind,) in rows(db_path, "SELECT kind FROM event ORDER BY id")]
    return [kind for (kind,) in rows(db_path, "SELECT kind FROM event WHERE node = ? ORDER BY id", node)]


def count_while_created(db_path: Path, sql: str, *args: object) -> int:
    """`value` as an int, for polling a store a controller may not have created yet: 0 until its tables exist."""
    if not db_path.exists():
        return 0
    try:
        return int(value(db_path, sql, *args))
    except sqlite3.DatabaseError:  # no such table yet, or the file still being made a store
        return 0
