"""The store's two append-only logs: health and state events, and the audit log of power-limit changes.

They are written by many paths (a sample batch's node transitions, drains, the controller's start and stop, every
power-limit change) and read back newest-first by `factoryctl events` / `audit` and the dashboard, and in the order
written by `events --follow`, so their SQL lives together here. `insert_event` is the one INSERT into `event`, shared
with the writers that log an event in their own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from factoryctl.model.telemetry import escape_controls
from factoryctl.store.connection import StoreConnection
from factoryctl.store.rows import AuditEntry, Event, to_ms


def insert_event(db: sqlite3.Connection, event: Event) -> None:
    """Append one event inside the caller's transaction."""
    db.execute(
        "INSERT INTO event (t_ms, node, gpu, kind, severity, message) VALUES (?, ?, ?, ?, ?, ?)",
        (to_ms(event.time), event.node, event.gpu, event.kind, event.severity, event.message),
    )


def _of_nodes(sql: str, params: list[Any], node: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`sql` (a `WHERE` already open) narrowed to the rows of `node` (None: every row)."""
    if node is not None:
        sql += f" AND node IN ({','.join('?' * len(node))})"
        params = [*params, *node]
    return sql, params


def _newest_first(sql: str, params: list[Any], node: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`sql` (a `WHERE` already open) narrowed to `node`, newest first; the caller appends the LIMIT value."""
    sql, params = _of_nodes(sql, params, node)
    return sql + " ORDER BY t_ms DESC, id DESC LIMIT ?", params


def typed_text(typed: str | None) -> str | None:
    r"""Text a person typed, as stored: shown to other operators, so its control characters are escaped.

    SQLite takes UTF-8 only: a byte that was not UTF-8 (argv or the environment decoded with `surrogateescape`,
    e.g. LOGNAME) is stored as `\xff`, so the entry of a limit already changed is still written.
    """
    return _utf8(escape_controls(typed)) if typed else typed


def _utf8(text: str) -> str:
    r"""`text` with each lone surrogate written as text: `\xff` for an undecodable byte, U+FFFD for any other."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_surrogate_as_text(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def _surrogate_as_text(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


@dataclass(frozen=True)
class EventMatch:
    """Which events `events_written` returns: of these nodes and this kind, at or after `since` (None: any)."""

    node: Sequence[str] | None = None
    kind: str | None = None
    since: float | None = None


class _RolledBack(Exception):
    """Ends a transaction that only probes whether a write would go through (see `check_audit_writable`)."""


class EventAndAuditLog(StoreConnection):
    """Appending to and reading the event log and the power audit log."""

    def add_events(self, events: Sequence[Event]) -> None:
        """Append events."""
        with self._transaction("events") as db:
            for event in events:
                insert_event(db, event)

    def events(
        self, since: float, node: Sequence[str] | None = None, limit: int = 1000, kind: str | None = None
    ) -> list[Event]:
        """Events (of `kind`, if given) at or after `since`, oldest first (the newest `limit`)."""
        sql = "SELECT id, t_ms, node, gpu, kind, severity, message FROM event WHERE t_ms >= ?"
        params: list[Any] = [to_ms(since)]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql, params = _newest_first(sql, params, node)
        found = self._query(sql, [*params, limit])
        return [Event(t / 1000, k, m, n, g, s, i) for i, t, n, g, k, s, m in reversed(found)]

    def last_event_id(self) -> int:
        """The id of the event written last (0: none yet): where `events_written` goes on from."""
        return int(self._query("SELECT coalesce(max(id), 0) FROM event")[0][0])

    def events_written(self, after_id: int, through_id: int, match: EventMatch, limit: int = 1000) -> list[Event]:
        """Events numbered after `after_id` up to `through_id` that `match`, in the order written (the first `limit`).

        An event's id is its place in the order the store took it, which is not its time's: an XID carries the
        time its agent saw it, and events held while the store refused writes are written when it takes them again.
        Following by id sees each once, whatever its time; ids are given under the write lock, so once
        `last_event_id` said `through_id`, no event up to it can still appear.
        """
        sql = "SELECT id, t_ms, node, gpu, kind, severity, message FROM event WHERE id > ? AND id <= ?"
        params: list[Any] = [after_id, through_id]
        if match.kind is not None:
            sql += " AND kind = ?"
            params.append(match.kind)
        if match.since is not None:
            sql += " AND t_ms >= ?"
            params.append(to_ms(match.since))
        sql, params = _of_nodes(sql, params, match.node)
        found = self._query(sql + " ORDER BY id LIMIT ?", [*params, limit])
        return [Event(t / 1000, k, m, n, g, s, i) for i, t, n, g, k, s, m in found]

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Record power-limit changes (before and after) in the audit log."""
        with self._transaction("audit entry") as db:
            db.executemany(
                "INSERT INTO audit (t_ms, node, gpu, action, before_w, after_w, clamped, user, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        to_ms(e.time),
                        e.node,
                        e.gpu,
                        e.action,
                        e.before_w,
                        e.after_w,
                        int(e.clamped),
                        typed_text(e.user),
                        typed_text(e.reason),
                    )
                    for e in entries
                ],
            )

    def check_audit_writable(self) -> None:
        """Raise StoreError unless an audit entry could be written now (read-only file, another writer, full disk).

        Called before a power limit changes: the probe takes the write lock and inserts a row, then rolls back, so
        nothing is left and a store that would refuse the entry refuses the change instead, with nothing changed.
        """
        try:
            with self._transaction("audit entry") as db:
                db.execute("INSERT INTO audit (t_ms, node, gpu, action, clamped) VALUES (0, '', 0, 'probe', 0)")
                raise _RolledBack
        except _RolledBack:
            pass

    def audit(self, since: float, node: Sequence[str] | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries at or after `since`, oldest first (the newest `limit`)."""
        sql = "SELECT id, t_ms, node, gpu, action, before_w, after_w, clamped, user, reason FROM audit WHERE t_ms >= ?"
        sql, params = _newest_first(sql, [to_ms(since)], node)
        found = self._query(sql, [*params, limit])
        return [
            AuditEntry(t / 1000, n, g, a, b, af, bool(c), u, r, i) for i, t, n, g, a, b, af, c, u, r in reversed(found)
        ]
