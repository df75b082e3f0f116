"""Damage a closed SQLite store the way a failing disk does: one table's root page overwritten with garbage."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def damage(path: Path, table: str) -> None:
    """Overwrite the root page of `table` with garbage (the store closed, so no -wal holds newer pages)."""
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    db.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
