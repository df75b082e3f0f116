"""The SQLite store: the one module that owns every SQL statement of factoryctl's history.

WAL mode (readers never block the controller's writer), a busy timeout, and versioned migrations keyed by
`PRAGMA user_version`. The SQL stays portable (no SQLite-only functions beyond `INSERT OR IGNORE/REPLACE`), so a
PostgreSQL store can implement the same methods later. Raw samples are one narrow integer row per GPU per interval,
keyed (node, gpu, time) so a sample written twice is stored once; 1-minute rollups keep min/mean/max for the long
window. Every sqlite3 failure leaves this module as a `StoreError` that says what happened to which file.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from factoryctl.errors import FactoryError
from factoryctl.model.telemetry import NodeSample
from factoryctl.store import rows
from factoryctl.store.rows import (
    METRICS,
    RAW_COLUMNS,
    ROLLUP_METRICS,
    AuditEntry,
    DrainInfo,
    Event,
    NodeState,
    Point,
    Series,
)

BUSY_TIMEOUT_S = 10.0
ROLLUP_LAG_MIN = 2  # minutes not rolled up yet, so late samples still land in their minute

_ROLLUP_COLS = ", ".join(
    f"{m.column}_min INTEGER, {m.column}_mean INTEGER, {m.column}_max INTEGER" for m in ROLLUP_METRICS
)

#: Schema versions; each entry migrates from the previous version. Never edit a released entry: append one.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE node (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        state TEXT, state_since_ms INTEGER, last_seen_ms INTEGER, error TEXT, message TEXT,
        drained INTEGER NOT NULL DEFAULT 0, drain_reason TEXT, drained_at_ms INTEGER, drained_by TEXT
    );
    CREATE TABLE gpu (
        node_id INTEGER NOT NULL, idx INTEGER NOT NULL, uuid TEXT, name TEXT, memory_total_mib REAL,
        power_limit_w REAL, power_limit_min_w REAL, power_limit_max_w REAL, power_limit_default_w REAL,
        temperature_slowdown_c REAL, updated_ms INTEGER,
        PRIMARY KEY (node_id, idx)
    );
    CREATE TABLE throttle_reason (bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE sample (
        node_id INTEGER NOT NULL, gpu INTEGER NOT NULL, t_ms INTEGER NOT NULL,
        {", ".join(f"{c} INTEGER" for c in RAW_COLUMNS)}, throttle INTEGER,
        PRIMARY KEY (node_id, gpu, t_ms)
    ) WITHOUT ROWID;
    CREATE TABLE rollup (
        node_id INTEGER NOT NULL, gpu INTEGER NOT NULL, t_min INTEGER NOT NULL, n INTEGER NOT NULL,
        {_ROLLUP_COLS},
        PRIMARY KEY (node_id, gpu, t_min)
    ) WITHOUT ROWID;
    CREATE TABLE node_latest (node_id INTEGER PRIMARY KEY, t_ms INTEGER NOT NULL, sample TEXT NOT NULL);
    CREATE TABLE event (
        id INTEGER PRIMARY KEY, t_ms INTEGER NOT NULL, node TEXT, gpu INTEGER, kind TEXT NOT NULL,
        severity TEXT NOT NULL, message TEXT NOT NULL
    );
    CREATE INDEX event_time ON event (t_ms);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY, t_ms INTEGER NOT NULL, node TEXT NOT NULL, gpu INTEGER NOT NULL,
        action TEXT NOT NULL, before_w REAL, after_w REAL, clamped INTEGER NOT NULL, user TEXT, reason TEXT
    );
    CREATE INDEX audit_time ON audit (t_ms);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(FactoryError):
    """The store could not be opened, read or written."""


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def open_store(path: Path, readonly: bool = False) -> Store:
    """Open (creating and migrating unless `readonly`) the store at `path`."""
    return Store(path, readonly=readonly)


class Store:
    """One connection to the SQLite store, safe to share between threads (calls are serialised)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()
        self._node_ids: dict[str, int] = {}
        self._reason_bits: dict[str, int] = {}
        self._gpu_info: dict[tuple[int, int], tuple[Any, ...]] = {}
        if readonly and not path.exists():
            raise StoreError(
                f"there is no store at {path} yet.",
                "run `factoryctl controller run`, or `factoryctl telemetry collect --once` to take one sweep.",
            )
        with self._translate("open"):
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
            else:
                self._db = sqlite3.connect(
                    f"file:{path}?mode=ro",
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
            else:
                self._check_version()
            self._load_reasons()

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        """Turn sqlite3 failures into sentences naming the file and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(doing, exc) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot {doing} the store at {self.path}: {exc.strerror or exc}.",
                f"check that {self.path.parent} exists and is writable.",
            ) from exc

    def _error(self, doing: str, exc: sqlite3.Error) -> StoreError:
        text = str(exc).lower()
        where = self.path
        if "readonly" in text or "read-only" in text:
            return StoreError(
                f"the store at {where} is read-only, so the {doing} was not saved.",
                f"give this user write access to {where} and its directory (or set state_dir in factory.yaml).",
            )
        if "full" in text:
            return StoreError(
                f"the store at {where} is full (the disk or the database size limit), so the {doing} was not saved.",
                "free disk space, or shorten controller.raw_retention in factory.yaml.",
            )
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the store at {where} stayed locked by another writer for {BUSY_TIMEOUT_S:g} s ({doing}).",
                "another factoryctl is writing; retry, or check `factoryctl controller` is not stuck.",
            )
        if "unable to open" in text:
            return StoreError(
                f"cannot open the store at {where}.",
                f"check that {where.parent} exists and this user may read and write it.",
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StoreError(
                f"the store at {where} is damaged ({exc}).",
                "move it aside; the controller creates a fresh one (history is lost, drains must be redone).",
            )
        return StoreError(f"store {doing} failed at {where}: {exc}.", "rerun with --debug for details.")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._newer(version)
        for number in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current == number:  # another process may have migrated while we waited
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._newer(version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path} has schema {version}; this factoryctl reads {SCHEMA_VERSION}.",
                "run `factoryctl telemetry collect --once` (or the controller) once to migrate it.",
            )

    def _newer(self, version: int) -> None:
        raise StoreError(
            f"the store at {self.path} was written by a newer factoryctl (schema {version}, this one knows "
            f"{SCHEMA_VERSION}).",
            "upgrade factoryctl on this machine.",
        )

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._translate(doing):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = (), doing: str = "read") -> list[tuple[Any, ...]]:
        with self._lock, self._translate(doing):
            return list(self._db.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite when the last writer closes)."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    def integrity_check(self) -> str:
        """`PRAGMA integrity_check`: "ok" when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    def set_size_limit(self, max_pages: int) -> None:
        """Cap the database size in pages (tests use it to play a full disk)."""
        self._query(f"PRAGMA max_page_count = {int(max_pages)}")

    # ------------------------------------------------------------------ ids

    def _node_id(self, db: sqlite3.Connection, name: str) -> int:
        node_id = self._node_ids.get(name)
        if node_id is None:
            db.execute("INSERT OR IGNORE INTO node (name) VALUES (?)", (name,))
            node_id = int(db.execute("SELECT id FROM node WHERE name = ?", (name,)).fetchone()[0])
            self._node_ids[name] = node_id
        return node_id

    def _known_node_ids(self, names: Sequence[str]) -> dict[str, int]:
        marks = ",".join("?" * len(names))
        found = self._query(f"SELECT name, id FROM node WHERE name IN ({marks})", list(names)) if names else []
        return {str(name): int(node_id) for name, node_id in found}

    def _load_reasons(self) -> None:
        self._reason_bits = {str(n): int(b) for b, n in self._db.execute("SELECT bit, name FROM throttle_reason")}

    def _reason_bits_for(self, db: sqlite3.Connection, samples: Sequence[NodeSample]) -> dict[str, int]:
        for sample in samples:
            for gpu in sample.gpus:
                for reason in gpu.throttle_reasons:
                    if reason not in self._reason_bits and len(self._reason_bits) < 62:
                        bit = 1 << len(self._reason_bits)
                        db.execute("INSERT OR IGNORE INTO throttle_reason (bit, name) VALUES (?, ?)", (bit, reason))
                        self._load_reasons_from(db)
        return self._reason_bits

    def _load_reasons_from(self, db: sqlite3.Connection) -> None:
        self._reason_bits = {str(n): int(b) for b, n in db.execute("SELECT bit, name FROM throttle_reason")}

    # ------------------------------------------------------------------ writing samples

    def write(
        self,
        samples: Sequence[NodeSample] = (),
        slow: Sequence[bool] | None = None,
        states: Sequence[NodeState] = (),
        events: Sequence[Event] = (),
    ) -> int:
        """Store samples (raw rows, GPU facts, latest), state changes and events in one transaction.

        `slow[i]` says whether sample i carries the slow tier (temperature, ECC). Returns the raw rows inserted;
        a row already stored for the same node, GPU and time is ignored, so a replayed batch adds nothing.
        """
        flags = list(slow) if slow is not None else [True] * len(samples)
        with self._transaction("samples") as db:
            bits = self._reason_bits_for(db, samples)
            raw: list[tuple[Any, ...]] = []
            latest: dict[int, tuple[Any, ...]] = {}
            for sample, with_slow in zip(samples, flags, strict=True):
                node_id = self._node_id(db, sample.node)
                t_ms = _ms(sample.time)
                if sample.state != "down" and (node_id not in latest or latest[node_id][1] <= t_ms):
                    latest[node_id] = (node_id, t_ms, sample)
                for gpu in sample.gpus:
                    raw.append((node_id, gpu.index, t_ms, *rows.gpu_values(gpu, with_slow, bits)))
                    self._upsert_gpu_info(db, node_id, gpu.index, rows.gpu_info(gpu), t_ms)
            marks = ",".join("?" * (4 + len(RAW_COLUMNS)))
            columns = ", ".join(RAW_COLUMNS)
            cursor = db.executemany(
                f"INSERT OR IGNORE INTO sample (node_id, gpu, t_ms, {columns}, throttle) VALUES ({marks})", raw
            )
            inserted = max(cursor.rowcount, 0)
            db.executemany(
                "INSERT OR REPLACE INTO node_latest (node_id, t_ms, sample) VALUES (?, ?, ?)",
                [(n, t, rows.sample_to_json(smp)) for n, t, smp in latest.values()],
            )
            db.executemany("UPDATE node SET last_seen_ms = ? WHERE id = ?", [(t, n) for n, t, _ in latest.values()])
            for state in states:
                self._write_state(db, state)
            for event in events:
                self._write_event(db, event)
        return inserted

    def _upsert_gpu_info(self, db: sqlite3.Connection, node_id: int, idx: int, info: tuple[Any, ...], t: int) -> None:
        key = (node_id, idx)
        if self._gpu_info.get(key) == info:
            return
        if all(v is None for v in info) and key in self._gpu_info:
            return  # a lost GPU reports nothing: keep what we knew
        db.execute(
            "INSERT OR REPLACE INTO gpu (node_id, idx, uuid, name, memory_total_mib, power_limit_w, power_limit_min_w,"
            " power_limit_max_w, power_limit_default_w, temperature_slowdown_c, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, idx, *info, t),
        )
        self._gpu_info[key] = info

    def _write_state(self, db: sqlite3.Connection, state: NodeState) -> None:
        node_id = self._node_id(db, state.node)
        db.execute(
            "UPDATE node SET state = ?, state_since_ms = ?, error = ?, message = ?,"
            " last_seen_ms = COALESCE(?, last_seen_ms) WHERE id = ?",
            (
                state.state,
                _ms(state.since),
                state.error,
                state.message,
                _ms(state.last_seen) if state.last_seen else None,
                node_id,
            ),
        )

    def _write_event(self, db: sqlite3.Connection, event: Event) -> None:
        db.execute(
            "INSERT INTO event (t_ms, node, gpu, kind, severity, message) VALUES (?, ?, ?, ?, ?, ?)",
            (_ms(event.time), event.node, event.gpu, event.kind, event.severity, event.message),
        )

    # ------------------------------------------------------------------ latest and node state

    def latest(self) -> list[tuple[NodeState, NodeSample | None]]:
        """Every node's last judged state and its newest sample (None if never seen), by node name."""
        found = self._query(
            "SELECT n.name, n.state, n.state_since_ms, n.last_seen_ms, n.error, n.message, l.sample"
            " FROM node n LEFT JOIN node_latest l ON l.node_id = n.id ORDER BY n.name"
        )
        out: list[tuple[NodeState, NodeSample | None]] = []
        for name, state, since, seen, error, message, sample in found:
            node_state = NodeState(
                name, state or "down", (since or 0) / 1000, seen / 1000 if seen else None, error, message
            )
            out.append((node_state, rows.sample_from_json(sample) if sample else None))
        return out

    def newest_sample_time(self) -> float | None:
        """Unix time of the newest stored node sample, or None for an empty store."""
        value = self._query("SELECT MAX(t_ms) FROM node_latest")[0][0]
        return value / 1000 if value is not None else None

    # ------------------------------------------------------------------ drain

    def set_drained(self, names: Sequence[str], drained: bool, reason: str | None, by: str | None) -> list[str]:
        """Drain (or resume) nodes; returns the names whose flag changed. Each change is also an event."""
        changed: list[str] = []
        now = time.time()
        with self._transaction("drain") as db:
            for name in names:
                node_id = self._node_id(db, name)
                was = db.execute("SELECT drained, drain_reason FROM node WHERE id = ?", (node_id,)).fetchone()
                if bool(was[0]) == drained and (not drained or was[1] == reason):
                    continue
                db.execute(
                    "UPDATE node SET drained = ?, drain_reason = ?, drained_at_ms = ?, drained_by = ? WHERE id = ?",
                    (int(drained), reason if drained else None, _ms(now), by, node_id),
                )
                changed.append(name)
                kind = "drain" if drained else "resume"
                why = f": {reason}" if drained and reason else ""
                self._write_event(
                    db,
                    Event(
                        now, kind, f"{name} {'drained' if drained else 'resumed'} by {by or 'unknown'}{why}", node=name
                    ),
                )
        return changed

    def drained_nodes(self) -> dict[str, DrainInfo]:
        """Drained nodes by name, with who drained them, when and why."""
        found = self._query("SELECT name, drain_reason, drained_at_ms, drained_by FROM node WHERE drained = 1")
        return {str(n): DrainInfo(str(n), r, (t or 0) / 1000, b) for n, r, t, b in found}

    # ------------------------------------------------------------------ events and audit

    def add_events(self, events: Sequence[Event]) -> None:
        """Append events."""
        with self._transaction("events") as db:
            for event in events:
                self._write_event(db, event)

    def events(
        self, since: float, node: Sequence[str] | None = None, limit: int = 1000, kind: str | None = None
    ) -> list[Event]:
        """Events (of `kind`, if given) at or after `since`, oldest first (the newest `limit`)."""
        sql = "SELECT id, t_ms, node, gpu, kind, severity, message FROM event WHERE t_ms >= ?"
        params: list[Any] = [_ms(since)]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if node is not None:
            sql += f" AND node IN ({','.join('?' * len(node))})"
            params += list(node)
        found = self._query(sql + " ORDER BY t_ms DESC, id DESC LIMIT ?", [*params, limit])
        return [Event(t / 1000, k, m, n, g, s, i) for i, t, n, g, k, s, m in reversed(found)]

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Record power-limit changes (before and after) in the audit log."""
        with self._transaction("audit entry") as db:
            db.executemany(
                "INSERT INTO audit (t_ms, node, gpu, action, before_w, after_w, clamped, user, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (_ms(e.time), e.node, e.gpu, e.action, e.before_w, e.after_w, int(e.clamped), e.user, e.reason)
                    for e in entries
                ],
            )

    def audit(self, since: float, node: Sequence[str] | None = None, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries at or after `since`, oldest first (the newest `limit`)."""
        sql = "SELECT id, t_ms, node, gpu, action, before_w, after_w, clamped, user, reason FROM audit WHERE t_ms >= ?"
        params: list[Any] = [_ms(since)]
        if node is not None:
            sql += f" AND node IN ({','.join('?' * len(node))})"
            params += list(node)
        found = self._query(sql + " ORDER BY t_ms DESC, id DESC LIMIT ?", [*params, limit])
        return [
            AuditEntry(t / 1000, n, g, a, b, af, bool(c), u, r, i) for i, t, n, g, a, b, af, c, u, r in reversed(found)
        ]

    # ------------------------------------------------------------------ history

    def _gpu_pairs(self, node_ids: Sequence[int] | None = None) -> list[tuple[int, int]]:
        found = self._query("SELECT node_id, idx FROM gpu ORDER BY node_id, idx")
        pairs = [(int(n), int(g)) for n, g in found]
        return [p for p in pairs if node_ids is None or p[0] in node_ids]

    def history(
        self,
        nodes: Sequence[str],
        metric: str,
        since: float,
        until: float,
        step: float | None = None,
        gpus: Sequence[int] | None = None,
    ) -> list[Series]:
        """One series per GPU: raw points where raw rows are kept, 1-minute means before that; bucketed by `step`."""
        spec = METRICS[metric]
        ids = self._known_node_ids(nodes)
        series: list[Series] = []
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            for _, gpu in self._gpu_pairs([node_id]):
                if gpus is not None and gpu not in gpus:
                    continue
                found = self._gpu_history(node_id, gpu, spec, since, until)
                points = _bucket(found, step) if step else [Point(t, v) for t, v, _, _, _ in found]
                series.append(Series(name, gpu, metric, points))
        return series

    def _gpu_history(
        self, node_id: int, gpu: int, spec: rows.Metric, since: float, until: float
    ) -> list[tuple[float, float | None, float | None, float | None, int]]:
        """(time, mean, min, max, n) rows, rollups before the oldest raw row then raw rows, in time order."""
        start, end = _ms(since), _ms(until)
        oldest = self._query("SELECT MIN(t_ms) FROM sample WHERE node_id = ? AND gpu = ?", (node_id, gpu))[0][0]
        out: list[tuple[float, float | None, float | None, float | None, int]] = []
        raw_from = max(start, oldest) if oldest is not None else end
        if spec.rollup and start < raw_from:
            col = spec.column
            found = self._query(
                f"SELECT t_min, {col}_mean, {col}_min, {col}_max, n FROM rollup WHERE node_id = ? AND gpu = ?"
                f" AND t_min >= ? AND t_min * 60000 < ? AND {col}_mean IS NOT NULL ORDER BY t_min",
                (node_id, gpu, start // 60000, raw_from),
            )
            for t_min, mean, low, high, n in found:
                out.append((t_min * 60.0, *(rows.decode(v, spec.scale) for v in (mean, low, high)), int(n)))
        found = self._query(
            f"SELECT t_ms, {spec.column} FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            f" AND {spec.column} IS NOT NULL ORDER BY t_ms",
            (node_id, gpu, raw_from, end),
        )
        for t_ms, value in found:
            v = rows.decode(value, spec.scale)
            out.append((t_ms / 1000, v, v, v, 1))
        return out

    def energy(self, nodes: Sequence[str], since: float, until: float) -> list[tuple[str, int, float, str]]:
        """Joules used per GPU in the window: (node, gpu, joules, source).

        From the driver's energy counter where raw rows exist (positive steps summed, so a reboot that resets the
        counter loses nothing but the step across it); from 1-minute mean power before the oldest raw row; from
        integrated power where the counter is not supported.
        """
        ids = self._known_node_ids(nodes)
        out: list[tuple[str, int, float, str]] = []
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            for _, gpu in self._gpu_pairs([node_id]):
                out.append((name, gpu, *self._gpu_energy(node_id, gpu, _ms(since), _ms(until))))
        return out

    def _gpu_energy(self, node_id: int, gpu: int, start: int, end: int) -> tuple[float, str]:
        oldest = self._query("SELECT MIN(t_ms) FROM sample WHERE node_id = ? AND gpu = ?", (node_id, gpu))[0][0]
        raw_from = max(start, oldest) if oldest is not None else end
        joules, sources = 0.0, []
        if start < raw_from:
            found = self._query(
                "SELECT SUM(power_mw_mean) FROM rollup WHERE node_id = ? AND gpu = ? AND t_min >= ? AND t_min < ?",
                (node_id, gpu, -(-start // 60000), raw_from // 60000),  # whole minutes before the raw window only
            )[0][0]
            if found is not None:
                joules += found / 1000 * 60
                sources.append("rollup")
        found = self._query(
            "SELECT t_ms, energy_mj, power_mw FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            " ORDER BY t_ms",
            (node_id, gpu, raw_from, end),
        )
        counters = [(t, e) for t, e, _ in found if e is not None]
        if len(counters) >= 2:
            joules += sum(b - a if b >= a else b for (_, a), (_, b) in itertools.pairwise(counters)) / 1000
            sources.append("counter")
        elif len(found) >= 2:
            powers = [(t, p) for t, _, p in found if p is not None]
            joules += sum((b[0] - a[0]) / 1000 * a[1] / 1000 for a, b in itertools.pairwise(powers))
            sources.append("power")
        return joules, "+".join(sources) or "none"

    def export(self, nodes: Sequence[str], since: float, until: float) -> Iterator[dict[str, Any]]:
        """Raw rows as dicts (time, node, gpu, every metric, throttle_reasons), by node, GPU and time."""
        ids = self._known_node_ids(nodes)
        with self._lock, self._translate("export"):
            self._load_reasons()
        bit_names = {bit: name for name, bit in self._reason_bits.items()}
        columns = ", ".join(RAW_COLUMNS)
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            found = self._query(
                f"SELECT gpu, t_ms, {columns}, throttle FROM sample WHERE node_id = ? AND t_ms >= ? AND t_ms < ?"
                " ORDER BY gpu, t_ms",
                (node_id, _ms(since), _ms(until)),
                "export",
            )
            for gpu, t_ms, *values in found:
                item: dict[str, Any] = {"time": t_ms / 1000, "node": name, "gpu": gpu}
                for metric, value in zip(METRICS.values(), values[:-1], strict=True):
                    item[metric.name] = rows.decode(value, metric.scale)
                item["throttle_reasons"] = rows.reasons_from_mask(values[-1], bit_names)
                yield item

    # ------------------------------------------------------------------ rollups and retention

    def rollup(self, now: float | None = None) -> int:
        """Roll raw rows up to 1-minute min/mean/max, for every finished minute not rolled up yet."""
        upto = int((now if now is not None else time.time()) // 60) - ROLLUP_LAG_MIN
        mark = self.get_meta("rollup_upto_min")
        start = int(mark) if mark is not None else None
        pairs = self._gpu_pairs()
        aggregates = ", ".join(
            f"MIN({m.column}), CAST(ROUND(AVG({m.column})) AS INTEGER), MAX({m.column})" for m in ROLLUP_METRICS
        )
        targets = ", ".join(f"{m.column}_min, {m.column}_mean, {m.column}_max" for m in ROLLUP_METRICS)
        written = 0
        with self._transaction("rollup") as db:
            if start is None:
                oldest = db.execute("SELECT MIN(t_ms) FROM sample").fetchone()[0]
                start = oldest // 60000 if oldest is not None else upto
            if upto <= start:
                return 0
            for node_id, gpu in pairs:
                cursor = db.execute(
                    f"INSERT OR REPLACE INTO rollup (node_id, gpu, t_min, n, {targets})"
                    f" SELECT node_id, gpu, t_ms / 60000, COUNT(*), {aggregates} FROM sample"
                    " WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ? GROUP BY node_id, gpu, t_ms / 60000",
                    (node_id, gpu, start * 60000, upto * 60000),
                )
                written += max(cursor.rowcount, 0)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_upto_min', ?)", (str(upto),))
        return written

    def prune(self, raw_retention_s: float, rollup_retention_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete raw rows older than their window (only once rolled up) and rollups older than theirs."""
        now = now if now is not None else time.time()
        mark = self.get_meta("rollup_upto_min")
        raw_cut = _ms(now - raw_retention_s)
        raw_cut = min(raw_cut, int(mark) * 60000 if mark is not None else 0)  # never prune what is not rolled up
        rollup_cut = int((now - rollup_retention_s) // 60)
        raw_deleted = rollup_deleted = 0
        with self._transaction("prune") as db:
            for node_id, gpu in self._gpu_pairs():
                raw_deleted += max(
                    db.execute(
                        "DELETE FROM sample WHERE node_id = ? AND gpu = ? AND t_ms < ?", (node_id, gpu, raw_cut)
                    ).rowcount,
                    0,
                )
                rollup_deleted += max(
                    db.execute(
                        "DELETE FROM rollup WHERE node_id = ? AND gpu = ? AND t_min < ?", (node_id, gpu, rollup_cut)
                    ).rowcount,
                    0,
                )
            db.execute("DELETE FROM event WHERE t_ms < ?", (rollup_cut * 60000,))
        return raw_deleted, rollup_deleted

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        found = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(found[0][0]) if found else None

    def set_meta(self, key: str, value: str) -> None:
        """Store a value in the meta table."""
        with self._transaction("meta") as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def count_rows(self) -> dict[str, int]:
        """Row counts of the big tables (for `controller` diagnostics and benchmarks)."""
        return {t: int(self._query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("sample", "rollup", "event", "audit")}


def _bucket(found: Sequence[tuple[float, float | None, float | None, float | None, int]], step: float) -> list[Point]:
    """Aggregate (time, mean, min, max, n) rows into `step`-second buckets (count-weighted mean)."""
    buckets: dict[float, list[float]] = {}
    for t, mean, low, high, n in found:
        if mean is None or low is None or high is None:
            continue
        key = (t // step) * step
        acc = buckets.get(key)
        if acc is None:
            buckets[key] = [mean * n, float(n), low, high]
        else:
            acc[0] += mean * n
            acc[1] += n
            acc[2] = min(acc[2], low)
            acc[3] = max(acc[3], high)
    return [Point(t, acc[0] / acc[1], acc[2], acc[3]) for t, acc in sorted(buckets.items())]
