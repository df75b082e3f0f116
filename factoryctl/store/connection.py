"""The store's one SQLite connection: opening, migrating, transactions, and failures as sentences.

Every table module (samples, history, nodes, logs) builds on `StoreConnection`, so they share one place that
opens the file in WAL mode (readers never block the controller's writer) with a busy timeout, applies the schema
migrations, serialises calls between threads, and turns every sqlite3 failure into a `StoreError` that says what
happened to which file (the failures it knows are one table: `sqlite_failures`). It also holds the small lookups every table module needs: node ids, the GPUs known per
node, throttle-reason bits and the meta table.

A locked store is waited for up to `BUSY_TIMEOUT_S` in slices: in SQLite's own wait (C) no signal handler runs, and
a controller's SIGTERM waited each 10 s write out (68 s: past systemd's TimeoutStopSec=30, then SIGKILL). Between
slices the handlers run, and after `stop_waiting_for_locks` (a stop) every wait ends within `STOP_GRACE_S` of it.

Readers without write access (operators reading a root controller's store) need care: SQLite reads a WAL-mode file
only if its `-wal` and `-shm` files exist or can be created, and a cleanly stopped controller leaves neither. Then
the file holds every committed row, so it is opened `immutable=1` (no locks, no `-shm`); once a writer starts (a
`-wal` appears) the connection is reopened the ordinary way, so a long-lived reader sees new rows again.

SQLite also opens, beside the store, a rollback journal `factory.db-journal` whenever one is there: it takes it for
an interrupted transaction and plays it back into the store (whoever wrote it: in a shared sticky state_dir another
user could choose the store's whole contents, audit log included), and as root it gives the `-journal`, `-wal` and
`-shm` it opens to the store's owner. So a writer refuses them all as it refuses a planted store
(`check_private_state`), and a reader in a directory anyone may write refuses them too
(`_refuse_planted_for_reading`): else a root reader would make another user's journal root's, and the next writer
would trust it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from factoryctl.errors import FactoryError
from factoryctl.model.telemetry import NodeSample
from factoryctl.state_dir_moved import advice, moved_from
from factoryctl.store.lock import UnsafeStateDir, check_private_state, make_private_dirs, refuse_unsafe_state_file
from factoryctl.store.lock_wait import BUSY_TIMEOUT_S, LOCK_WAIT_SLICE_S, execute_waiting
from factoryctl.store.migration_said import record_migration
from factoryctl.store.schema import MIGRATIONS, OLDEST_READABLE_SCHEMA, SCHEMA_VERSION
from factoryctl.store.sqlite_failures import Situation, classify

MAX_REASON_BIT = 1 << 61  # throttle-reason bits are kept in a signed 64-bit column: 62 reasons at most


#: sqlite3's error for a TEXT value that is not UTF-8: one such row made a whole listing fail (`audit`: every format).
_UNDECODABLE = "Could not decode to UTF-8"


def _text_or_bytes_escaped(value: bytes) -> str:
    r"""A TEXT value as a str, each byte that is not UTF-8 as `\xff`: what node text's lone surrogates become."""
    return value.decode("utf-8", "backslashreplace")


class StoreError(FactoryError):
    """The store could not be opened, read or written."""


class StoreDamaged(StoreError):
    """The store file is corrupt: no retry will help; it has to be moved aside (a new one is created at the path)."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"the store at {path} is damaged: {detail}.",
            f"move it aside (`mv {path} {path}.damaged`, with any {path.name}-wal and -shm beside it); the next "
            "controller start creates a new store, where history is lost and drains must be redone.",
        )
        self.path = path
        #: SQLite's own words (`database disk image is malformed`).
        self.detail = detail


def _needs_shm(exc: sqlite3.Error) -> bool:
    """Whether a read-only open failed for want of a `-shm` file (SQLITE_READONLY_DIRECTORY, SQLITE_CANTOPEN)."""
    text = str(exc).lower()
    return "readonly" in text or "unable to open" in text


def _beside_store(path: Path) -> tuple[str, ...]:
    """The names of the files SQLite may open beside the store at `path`: its rollback journal, log and index.

    No super-journal: only a rollback journal names one (a transaction over several attached files), and the store,
    in WAL mode, neither attaches files nor writes a rollback journal once its mode is set.
    """
    return (f"{path.name}-journal", f"{path.name}-wal", f"{path.name}-shm")


@contextlib.contextmanager
def _unsafe_as_store_error() -> Iterator[None]:
    """An `UnsafeStateDir` raised in the body as a `StoreError`: a store that cannot be opened, to every caller."""
    try:
        yield
    except UnsafeStateDir as exc:  # the dashboard then reads it as any store it cannot open
        raise StoreError(exc.message, exc.hint) from None


def _refuse_planted_for_reading(path: Path) -> None:
    """Refuse to read the store at `path` when another user planted a file SQLite would open beside it (a link too).

    Only in a directory anyone may write (sticky, as /tmp): elsewhere only the store's owner and group can make files
    there. A file of the store's owner is its own (a reader of another user's store reads their `-wal`); one of this
    user or root is too. Root's SQLite would give any other file it opens there to the store's owner, and the next
    writer would then trust it (module docstring).
    """
    try:
        directory, store = os.stat(path.parent), os.stat(path)
    except OSError:
        return  # no store to read, or a directory that cannot be searched: the open says so
    if not directory.st_mode & stat.S_IWOTH:
        return
    for name in _beside_store(path):
        with contextlib.suppress(FileNotFoundError):
            found = os.lstat(path.parent / name)
            refuse_unsafe_state_file(path.parent / name, found, strangers=found.st_uid != store.st_uid)


def _create_private(path: Path) -> None:
    """Create the store's directory (0700) and an empty store file (0600) if missing; existing ones keep their modes.

    SQLite would create the file 0644 under the usual umask, and gives its `-wal` and `-shm` the store's mode: made
    here first, none of them is readable by other users unless an operator grants it (docs/controller.md).

    An existing directory or file another user could have planted a link in (or as) is refused before SQLite, which
    follows a link at the store's path and plays a `-journal` back into the store, opens anything
    (`check_private_state`).
    """
    make_private_dirs(path.parent)
    with _unsafe_as_store_error():
        check_private_state(path.parent)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        check_private_state(path.parent, (path.name, *_beside_store(path)))


def _refuse_moved(path: Path, readonly: bool) -> None:
    """No new, empty store where factory.yaml's relative state_dir now points while the old one is elsewhere.

    A controller or `nodes drain` would start it silently and every drain and sample seemed lost (state_dir_moved).
    """
    old = moved_from(path)
    if old is None:
        return
    raise StoreError(
        f"there is no store at {path}; this factory.yaml's store is at {old}, where factoryctl before 2026-11-23 put a "
        "relative state_dir (from the current directory)" + ("." if readonly else ": no new, empty store is made."),
        advice(path, old),
    )


class StoreConnection:
    """One connection to the SQLite store, safe to share between threads (calls are serialised)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()
        self._node_ids: dict[str, int] = {}
        self._reason_bits: dict[str, int] = {}
        self._gpu_info: dict[tuple[int, int], tuple[Any, ...]] = {}
        #: Opened `immutable=1`: a reader without write access to a store no writer has open (module docstring).
        self.immutable = False
        #: The store's schema: a writer migrates to SCHEMA_VERSION, a reader reads from OLDEST_READABLE_SCHEMA on.
        self.schema_version = SCHEMA_VERSION
        #: The store file as the immutable connection saw it (inode, size, mtime): SQLite trusts its page cache.
        self._immutable_stamp: tuple[int, int, int] | None = None
        _refuse_moved(path, readonly)
        with self._translate("open"):  # exists() raises too (a directory without search permission)
            missing = readonly and not path.exists()
        if missing:
            raise StoreError(
                f"there is no store at {path} yet.",
                "run `factoryctl controller run`, or `factoryctl telemetry collect` to take one sweep.",
            )
        with self._translate("open"):
            self._db = self._open_for_reading() if readonly else self._connect()
            try:
                self._prepare()
            except BaseException:  # newer schema, damaged file, locked, a failed migration: no connection left open
                self._db.close()
                raise
        self.identity = self._file_identity()

    def _prepare(self) -> None:
        """Make the fresh connection ready: WAL mode and the current schema for a writer, then the reason bits."""
        if not self.readonly:
            execute_waiting(self._db, "PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        self._load_reasons()

    def _file_identity(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the file at `path` now, None when there is none."""
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return (found.st_dev, found.st_ino)

    def replaced(self) -> str | None:
        """Whether the file at `path` is no longer the one this connection has open: "deleted", "replaced" or None.

        The connection keeps reading and writing the inode it opened, so a store deleted (`rm factory.db*`) or
        swapped (a restored backup) under a long-lived process goes unnoticed by SQLite; one `stat` tells.
        """
        now = self._file_identity()
        if now is None:
            return "deleted"
        return "replaced" if now != self.identity else None

    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        """Open the file: read-write (creating its directory), or read-only without ever creating it."""
        if not self.readonly:
            _create_private(self.path)
            db = sqlite3.connect(
                str(self.path), timeout=LOCK_WAIT_SLICE_S, isolation_level=None, check_same_thread=False
            )
        else:
            if not immutable:  # immutable=1 opens nothing beside the store
                with _unsafe_as_store_error():
                    _refuse_planted_for_reading(self.path)
            query = "mode=ro&immutable=1" if immutable else "mode=ro"
            uri = f"file:{urllib.parse.quote(str(self.path))}?{query}"
            db = sqlite3.connect(
                uri, uri=True, timeout=LOCK_WAIT_SLICE_S, isolation_level=None, check_same_thread=False
            )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_SLICE_S * 1000)}")
        except BaseException:
            db.close()
            raise
        return db

    def _open_for_reading(self) -> sqlite3.Connection:
        """A read-only connection at the current schema, `immutable` when it must be (module docstring).

        That is when SQLite needs a `-shm` file this user may not create and no writer has the store open (no `-wal`
        with rows in it). `immutable=1` ignores the `-wal`, so it is only used when there is none to ignore; with one
        (a controller that runs, or was killed) the `-shm` exists too, and the ordinary open works for anyone who may
        read them.
        """
        try:
            return self._checked(self._connect())
        except sqlite3.Error as exc:
            if not _needs_shm(exc):
                raise
            if self._wal_has_rows():
                raise self._unreadable_log() from exc
        self._immutable_stamp = self._main_stamp()
        db = self._checked(self._connect(immutable=True))
        self.immutable = True
        return db

    def _main_stamp(self) -> tuple[int, int, int] | None:
        """The store file's (inode, size, mtime), or None when it is gone: what tells an immutable reader it changed."""
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return (found.st_ino, found.st_size, found.st_mtime_ns)

    def _checked(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """`db` once its schema version is checked; closed when the check fails."""
        try:
            self._check_version(db)
        except BaseException:
            db.close()
            raise
        return db

    def _wal_has_rows(self) -> bool:
        """Whether `factory.db-wal` exists and is not empty (a writer has the store open, or was killed)."""
        try:
            return os.stat(f"{self.path}-wal").st_size > 0
        except OSError:
            return False

    def _unreadable_log(self) -> StoreError:
        return StoreError(
            f"the store at {self.path} cannot be read by this user: its write-ahead log {self.path.name}-wal "
            f"needs a {self.path.name}-shm file that this user may not create in {self.path.parent}.",
            "start the controller, or run `factoryctl telemetry collect` as the store's owner, to fold the log "
            f"into the store; or give this user write access to {self.path.parent}.",
        )

    def _reopen_if_written(self) -> None:
        """An `immutable` reader reopens once the file changed under it.

        The ordinary way once a writer has the store open (its `-wal` has rows); immutable again when a writer came
        and went between two queries (`collect --once`, a drain): SQLite would otherwise keep serving its cached
        pages of the old file, mixed with new ones.
        """
        if not self.immutable:
            return
        if self._wal_has_rows():
            try:
                fresh = self._checked(self._connect())
            except sqlite3.Error:
                fresh = None  # its -shm is not there yet: read the file as it is
            if fresh is not None:
                self._db.close()
                self._db, self.immutable = fresh, False
                return
        stamp = self._main_stamp()
        if stamp != self._immutable_stamp:
            self._db.close()
            self._immutable_stamp = stamp
            self._db = self._checked(self._connect(immutable=True))

    # ------------------------------------------------------------------ failures as sentences

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
        """One sentence for what happened (and, for a write, what was not saved); the hint says what to do."""
        waited = getattr(exc, "waited_s", BUSY_TIMEOUT_S)  # less when a stop cut the wait short
        situation = Situation(self.path, doing, exc, self.readonly, self.immutable, waited)
        failure = classify(situation)
        if failure.damaged:
            return StoreDamaged(self.path, str(exc))
        return StoreError(failure.message.format(s=situation), failure.hint.format(s=situation))

    # ------------------------------------------------------------------ schema version

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._newer(version)
        migrated = False
        for number in range(version, SCHEMA_VERSION):
            execute_waiting(self._db, "BEGIN IMMEDIATE")
            try:
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current == number:  # another process may have migrated while we waited
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number + 1}")
                    migrated = True
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if migrated and version > 0:  # a store that had rows, not a new one: older factoryctl now refuse it
            record_migration(self._db, self.path, version, SCHEMA_VERSION)

    def _check_version(self, db: sqlite3.Connection) -> None:
        version = execute_waiting(db, "PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._newer(version)
        if version < OLDEST_READABLE_SCHEMA:
            raise StoreError(
                f"the store at {self.path} has schema {version}; this factoryctl reads {SCHEMA_VERSION}.",
                "run `factoryctl telemetry collect` (or the controller) once to migrate it.",
            )
        self.schema_version = version

    def _newer(self, version: int) -> None:
        raise StoreError(
            f"the store at {self.path} was written by a newer factoryctl (schema {version}, this one knows "
            f"{SCHEMA_VERSION}).",
            "upgrade factoryctl on this machine.",
        )

    # ------------------------------------------------------------------ transactions and queries

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; on any failure (the COMMIT's too) it is rolled back and the id caches forgotten.

        The caches (node ids, throttle-reason bits, GPU facts) are filled inside transactions: after a rollback they
        would name rows the table never got, and ids another process may then take for something else.
        """
        with self._lock, self._translate(doing):
            try:  # BEGIN inside: a signal's exception right after it must not leave the transaction open
                execute_waiting(self._db, "BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._forget_cached_rows()
                raise

    def _forget_cached_rows(self) -> None:
        """Drop what the caches learnt from the database; each is filled again, from the tables, when next needed."""
        self._node_ids = {}
        self._reason_bits = {}
        self._gpu_info = {}

    def _query(self, sql: str, params: Sequence[Any] = (), doing: str = "read") -> list[tuple[Any, ...]]:
        with self._lock, self._translate(doing):
            self._reopen_if_written()
            try:
                return list(execute_waiting(self._db, sql, params).fetchall())
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith(_UNDECODABLE):
                    raise
            # a text value that is not UTF-8 (written into the file by other means): read as the bytes it holds
            self._db.text_factory = _text_or_bytes_escaped
            try:
                return list(execute_waiting(self._db, sql, params).fetchall())
            finally:
                self._db.text_factory = str

    def close(self) -> None:
        """Close the connection (WAL is checkpointed by SQLite when the last writer closes)."""
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    def integrity_check(self) -> str:
        """`PRAGMA integrity_check`: "ok" when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

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

    def _gpu_pairs(self, node_ids: Sequence[int] | None = None) -> list[tuple[int, int]]:
        found = self._query("SELECT node_id, idx FROM gpu ORDER BY node_id, idx")
        pairs = [(int(n), int(g)) for n, g in found]
        return [p for p in pairs if node_ids is None or p[0] in node_ids]

    def _load_reasons(self) -> None:
        found = execute_waiting(self._db, "SELECT bit, name FROM throttle_reason")
        self._reason_bits = {str(n): int(b) for b, n in found}

    def _reason_bits_for(self, db: sqlite3.Connection, samples: Sequence[NodeSample]) -> dict[str, int]:
        """The bit of every throttle reason in `samples`, giving new reasons the next free bit (call in a transaction).

        The cache only says which reasons are known; a new one's bit comes from the table, read inside this write
        transaction (which holds the write lock): another process sharing the store may have taken bits since we
        loaded them, and a bit taken twice would make one reason read as another.
        """
        new = {r for s in samples for g in s.gpus for r in g.throttle_reasons if r not in self._reason_bits}
        if not new:
            return self._reason_bits
        self._load_reasons_from(db)
        for reason in sorted(new.difference(self._reason_bits)):
            used = max(self._reason_bits.values(), default=0)
            bit = used << 1 if used else 1
            if bit > MAX_REASON_BIT:
                break  # more reasons than bits: the rest are not stored (NVML has about a dozen)
            db.execute("INSERT INTO throttle_reason (bit, name) VALUES (?, ?)", (bit, reason))
            self._reason_bits[reason] = bit
        return self._reason_bits

    def _load_reasons_from(self, db: sqlite3.Connection) -> None:
        self._reason_bits = {str(n): int(b) for b, n in db.execute("SELECT bit, name FROM throttle_reason")}

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
        """Row counts of the big tables.

        Kept public for benchmarks/bench_controller.py, which reports the store's bytes per sample row from it (tests
        use it too); no command shows these counts today.
        """
        return {t: int(self._query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("sample", "rollup", "event", "audit")}
