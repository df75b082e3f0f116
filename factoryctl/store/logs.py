"""The store's two append-only logs: health and state events, and the audit log of power-limit changes.

They are written by many paths (a sample batch's node transitions, drains, the controller's start and stop, every
power-limit change) and read back newest-first by `factoryctl events` / `audit` and the dashboard, and in the order
written by `events --follow`, so their SQL lives together here. `insert_event` is the one INSERT into `event`, shared
with the writers that log an event in their own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from factoryctl.model.telemetry import escape_controls
from factoryctl.store.connection import StoreConnection
from factoryctl.store.rows import CONFIRMED, AuditEntry, Event, to_ms
from factoryctl.store.who import Run


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
    return escape_controls(typed) if typed else typed  # which writes a lone surrogate as text (`\xff`, U+FFFD)


@dataclass(frozen=True)
class EventMatch:
    """Which events `events_written` returns: of these nodes and kinds, at or after `since` (None: any)."""

    node: Sequence[str] | None = None
    kind: str | tuple[str, ...] | None = None
    since: float | None = None


def _of_kinds(sql: str, params: list[Any], kind: str | tuple[str, ...] | None) -> tuple[str, list[Any]]:
    """`sql` narrowed to events of `kind` (one, or any of several; None or empty: every kind)."""
    kinds = (kind,) if isinstance(kind, str) else (kind or ())
    if not kinds:
        return sql, params
    return sql + f" AND kind IN ({', '.join('?' * len(kinds))})", [*params, *kinds]


def _stored_event(row: Sequence[Any]) -> Event:
    """An event row (`id, t_ms, node, gpu, kind, severity, message`) as an `Event`.

    Older controllers wrote a node's state change with its message's own copy of the node's name
    (`n02 is degraded: n02: GPU 3 ...`); that copy is taken out, so old and new events read alike.
    """
    event_id, t_ms, node, gpu, kind, severity, message = row
    if node and message.startswith(f"{node} "):
        message = message.replace(f": {node}: ", ": ", 1)
    return Event(t_ms / 1000, kind, message, node, gpu, severity, event_id)


@dataclass(frozen=True)
class LogWindow:
    """The newest `limit` rows of a log (`newest_window`), read page by page by `audit_pages` / `event_pages`.

    `after` is the (t_ms, id) just before the oldest row listed; `where` (with its `params`) keeps the rows of the
    nodes and kinds asked for, up to the newest when the window was taken; `cut` says whether older rows at or after
    `since` were left out by the limit.
    """

    after: tuple[int, int]
    where: str
    params: tuple[Any, ...]
    cut: bool


_Row = TypeVar("_Row")


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
        self,
        since: float,
        node: Sequence[str] | None = None,
        limit: int = 1000,
        kind: str | tuple[str, ...] | None = None,
    ) -> list[Event]:
        """Events (of `kind`, or of any of several, if given) at or after `since`, oldest first (the newest `limit`)."""
        sql = "SELECT id, t_ms, node, gpu, kind, severity, message FROM event WHERE t_ms >= ?"
        sql, params = _of_kinds(sql, [to_ms(since)], kind)
        sql, params = _newest_first(sql, params, node)
        found = self._query(sql, [*params, limit])
        return [_stored_event(row) for row in reversed(found)]

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
        sql, params = _of_kinds(sql, [after_id, through_id], match.kind)
        if match.since is not None:
            sql += " AND t_ms >= ?"
            params.append(to_ms(match.since))
        sql, params = _of_nodes(sql, params, match.node)
        found = self._query(sql + " ORDER BY id LIMIT ?", [*params, limit])
        return [_stored_event(row) for row in found]

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Record power-limit changes (before and after) in the audit log."""
        self.replace_audit([], entries)

    def add_audit_requests(self, entries: Sequence[AuditEntry], run: Run | None = None) -> list[int]:
        """Record requests not yet answered (outcome unknown), in one transaction; their ids, in `entries`' order.

        Written before any node is asked, so a factoryctl killed before it heard back leaves them; each is replaced
        (`replace_audit`) once its node answers. `run` is the process asking (schema 5): a later command closes the
        requests of one that ended (`audit_runs.close_ended`); None records none.
        """
        sql, whose = (_INSERT_AUDIT, ()) if run is None else (_INSERT_REQUEST_OF_RUN, (run.text(),))
        with self._transaction("audit entry") as db:
            return [int(db.execute(sql, (*_audit_row(entry), *whose)).lastrowid or 0) for entry in entries]

    def replace_audit(self, request_ids: Sequence[int], entries: Sequence[AuditEntry]) -> None:
        """Write `entries` and delete the requests numbered `request_ids` (answered), in one transaction."""
        with self._transaction("audit entry") as db:
            db.executemany(_INSERT_AUDIT, [_audit_row(entry) for entry in entries])
            db.executemany("DELETE FROM audit WHERE id = ?", [(i,) for i in request_ids])

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
        sql, params = _newest_first(self._audit_select() + " WHERE t_ms >= ?", [to_ms(since)], node)
        found = self._query(sql, [*params, limit])
        return [_audit_entry(row) for row in reversed(found)]

    def _audit_select(self) -> str:
        """The SELECT of an audit row (`_audit_entry`), FROM included.

        A store older than schema 3 (read without migrating it) has no `requested_w` and `outcome`: its entries are
        all answers, as they were then.
        """
        added = "requested_w, outcome" if self.schema_version >= 3 else "NULL, NULL"
        return f"SELECT id, t_ms, node, gpu, action, before_w, after_w, clamped, user, reason, {added} FROM audit"

    def has_logged(self, log: str, node: str) -> bool:
        """Whether the `log` ("audit" or "event") holds any row of `node` (one that may have left factory.yaml)."""
        table = {"audit": "audit", "event": "event"}[log]
        return bool(self._query(f"SELECT 1 FROM {table} WHERE node = ? LIMIT 1", [node]))

    def newest_window(
        self,
        log: str,
        since: float,
        node: Sequence[str] | None,
        limit: int,
        kind: str | tuple[str, ...] | None = None,
        until: float | None = None,
    ) -> LogWindow:
        """Where the newest `limit` rows of `log` ("audit" or "event", of `kind` if given) at or after `since` begin.

        Rows written after this call are left out of the pages, so the listing is the newest `limit` as of now;
        `until` (None: no end) ends the window before it, as `--until` ends every other time window.
        """
        table = {"audit": "audit", "event": "event"}[log]
        through = int(self._query(f"SELECT coalesce(max(id), 0) FROM {table}")[0][0])
        where, params = _of_kinds(" AND id <= ?", [through], kind) if log == "event" else (" AND id <= ?", [through])
        where, params = _of_nodes(where, params, node)
        if until is not None:
            where, params = where + " AND t_ms < ?", [*params, to_ms(until)]
        sql = f"SELECT t_ms, id FROM {table} WHERE t_ms >= ?{where} ORDER BY t_ms DESC, id DESC LIMIT 2 OFFSET ?"
        # the limit-th newest is where the listing starts; a row past it means the limit cut the listing
        found = self._query(sql, [to_ms(since), *params, limit - 1])
        after = (int(found[0][0]), int(found[0][1]) - 1) if found else (to_ms(since), -1)
        return LogWindow(after, where, tuple(params), len(found) > 1)

    def audit_pages(self, window: LogWindow, page: int = 1000) -> Iterator[list[AuditEntry]]:
        """The audit entries of `window`, oldest first, `page` at a time (`_pages`)."""
        return self._pages(window, self._audit_select(), _audit_entry, page)

    def event_pages(self, window: LogWindow, page: int = 1000) -> Iterator[list[Event]]:
        """The events of `window`, oldest first, `page` at a time (`_pages`)."""
        select = "SELECT id, t_ms, node, gpu, kind, severity, message FROM event"
        return self._pages(window, select, _stored_event, page)

    def _pages(self, window: LogWindow, select: str, convert: Callable[[Any], _Row], page: int) -> Iterator[list[_Row]]:
        """The rows of `window` in (time, id) order, `page` at a time: memory stays bounded however many are listed.

        Each page goes on from the last one's (time, id): the index on time starts each query where the last ended.
        """
        after = window.after
        sql = f"{select} WHERE t_ms >= ? AND (t_ms > ? OR id > ?){window.where} ORDER BY t_ms, id LIMIT ?"
        while True:
            found = self._query(sql, [after[0], after[0], after[1], *window.params, page])
            if found:
                yield [convert(row) for row in found]
            if len(found) < page:
                return
            after = (int(found[-1][1]), int(found[-1][0]))


_INSERT_AUDIT = (
    "INSERT INTO audit (t_ms, node, gpu, action, before_w, after_w, clamped, user, reason, requested_w, outcome)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: `_INSERT_AUDIT` with the process that wrote the request (`who.Run.text`, schema 5).
_INSERT_REQUEST_OF_RUN = _INSERT_AUDIT.replace("outcome)", "outcome, run)").replace("?)", "?, ?)")
#: `gpu` of a request for every GPU of its node (the column is NOT NULL): read back as None.
_EVERY_GPU = -1


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    """The values of `_INSERT_AUDIT` for `e` (`outcome` NULL for an answer: what every entry before schema 3 is)."""
    return (
        to_ms(e.time),
        e.node,
        _EVERY_GPU if e.gpu is None else e.gpu,
        e.action,
        e.before_w,
        e.after_w,
        int(e.clamped),
        typed_text(e.user),
        typed_text(e.reason),
        e.requested_w,
        None if e.outcome == CONFIRMED else e.outcome,
    )


def _audit_entry(row: tuple[Any, ...]) -> AuditEntry:
    """An `audit` row (id, t_ms, node, gpu, action, before_w, after_w, clamped, user, reason, requested_w, outcome)."""
    i, t, n, g, a, b, af, c, u, r, requested, outcome = row
    gpu = None if g == _EVERY_GPU else g
    return AuditEntry(t / 1000, n, gpu, a, b, af, bool(c), u, r, i, requested, outcome or CONFIRMED)
