"""The audit log's requests (written before a node is asked) and answers, and a store older than them.

A request is an entry of outcome `unknown` with the value asked; its node's answer replaces it in one transaction.
A read-only command reads a store of schema 2 (no `requested_w`, no `outcome`) without migrating it: its entries are
answers, as every entry was then.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from factoryctl.store.rows import CONFIRMED, UNKNOWN, AuditEntry
from factoryctl.store.schema import MIGRATIONS
from factoryctl.store.sqlite import Store

T0 = 1_700_000_000.0


def test_an_answer_replaces_its_request(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    try:
        request = AuditEntry(T0, "n1", None, "set", None, None, False, "root", "peak", None, 450.0, UNKNOWN)
        other = AuditEntry(T0, "n2", 3, "reset", None, None, False, "root", None, None, None, UNKNOWN)
        ids = store.add_audit_requests([request, other])
        assert [(e.node, e.gpu, e.outcome, e.requested_w) for e in store.audit(0)] == [
            ("n1", None, UNKNOWN, 450.0),
            ("n2", 3, UNKNOWN, None),
        ]
        answer = AuditEntry(T0 + 1, "n1", 0, "set", 700.0, 450.0, False, "root", "peak", None, 450.0)
        store.replace_audit(ids[:1], [answer])
        found = [(e.node, e.gpu, e.before_w, e.after_w, e.outcome) for e in store.audit(0)]
    finally:
        store.close()
    assert found == [("n2", 3, None, None, UNKNOWN), ("n1", 0, 700.0, 450.0, CONFIRMED)]


def test_a_reader_reads_the_audit_of_a_schema_2_store_without_migrating_it(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        db.executescript(migration)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO audit (t_ms, node, gpu, action, before_w, after_w, clamped, user, reason)"
        " VALUES (?, 'n1', 0, 'set', 700, 450, 0, 'root', 'peak')",
        (int(T0 * 1000),),
    )
    db.commit()
    db.close()
    store = Store(path, readonly=True)
    try:
        [entry] = store.audit(0)
    finally:
        store.close()
    assert (entry.node, entry.gpu, entry.after_w, entry.outcome, entry.requested_w) == ("n1", 0, 450.0, CONFIRMED, None)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_a_node_whose_session_comes_up_after_the_finish_is_not_asked(tmp_path: Path) -> None:
    """Interrupted while a node still connected: `finish` dropped its request as never asked, so asking it later
    would change a limit no log holds (a code review found the path)."""
    import pytest

    from factoryctl.errors import NodeError
    from factoryctl.power.limit_audit import RequestTrail

    store = Store(tmp_path / "factory.db")
    try:
        trail = RequestTrail(store, "set", 450.0, None)
        trail.announce(["fast", "late"], None)
        trail.asking("fast")
        trail.finish()
        with pytest.raises(NodeError, match="not asked"):
            trail.asking("late")
        assert [(e.node, e.outcome) for e in store.audit(0)] == [("fast", UNKNOWN)]
    finally:
        store.close()
