"""The store's tables, as the list of migrations that builds them.

Kept apart from the code that reads and writes, so a schema change is one reviewable diff: the tables are keyed
for dedup (node, GPU, time) and the raw sample table is `WITHOUT ROWID` to stay narrow. Each entry migrates from
the previous version, counted by `PRAGMA user_version`; never edit a released entry, append one.
"""

from __future__ import annotations

from factoryctl.store.rows import RAW_COLUMNS, ROLLUP_METRICS

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
    # 2: how many of the minute's rows had each metric (`n` counts them all; the slow tier is on one in five).
    # Rollups made before it keep NULL here: readers weight them by `n`, as they were before.
    ";".join(f"ALTER TABLE rollup ADD COLUMN {m.column}_n INTEGER" for m in ROLLUP_METRICS),
    # 3: a power-limit request's entries are written before any node is asked (`outcome` 'unknown', `gpu` -1 for
    # every GPU of the node), then replaced by the node's answer: a factoryctl killed in between (SIGKILL, the OOM
    # killer) leaves that trace. `requested_w` is the value asked (NULL: a reset). Entries made before it keep NULL
    # in both: they are answers, as every entry was then.
    "ALTER TABLE audit ADD COLUMN requested_w REAL; ALTER TABLE audit ADD COLUMN outcome TEXT",
    # 4: the milliseconds of time the minute's power samples stand for, from their own timestamps
    # (`coverage.covered_by_minute`): energy bills a minute for them. Rollups made before it keep NULL: energy infers
    # their share from their sample count and their neighbours' (`energy._covered_share`), as it did before.
    "ALTER TABLE rollup ADD COLUMN power_covered_ms INTEGER",
    # 5: the process that wrote a request (`run`: host, pid, boot id, start time; `who.Run`), so a later command tells
    # a request whose command was killed (SIGKILL, the OOM killer) from one still waiting for its node, and closes it
    # (`audit_runs`). Requests are few and answers many: the partial index holds only the requests, so finding them
    # costs nothing however long the log. Requests left before it get '' (no process recorded): their command, of an
    # older factoryctl, is taken as gone; one still running replaces its request with the answer all the same.
    """
    ALTER TABLE audit ADD COLUMN run TEXT;
    CREATE INDEX audit_request_run ON audit (run, outcome) WHERE outcome = 'unknown';
    UPDATE audit SET run = '' WHERE outcome = 'unknown'
    """,
    # 6: the gang scheduler's jobs (`store.jobs`). `record` is the whole job as `model.job_records.job_record` writes
    # it (JSON), so a field added to the job later needs no migration; `state`, `user` and the submit time are copied
    # out of it for the queries that filter and order by them (the queue is read by state on every pass).
    """
    CREATE TABLE job (
        id TEXT PRIMARY KEY, state TEXT NOT NULL, user TEXT NOT NULL, submitted_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL, record TEXT NOT NULL
    );
    CREATE INDEX job_state ON job (state, updated_ms)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
#: The oldest schema a read-only command reads without a migration (only a writer migrates): schema 2 added only the
#: rollup's per-metric counts, which a reader does without (`n` weighs every row then, as before), and schema 3 only
#: the audit's `requested_w` and `outcome`, which read as NULL (an answered entry) before it, and schema 4 only the
#: rollup's `power_covered_ms`, without which energy infers a minute's share as before, and schema 5 only the
#: audit's `run` and its index, which listings do not show, and schema 6 only the `job` table, which a reader of an
#: older store takes as empty (`store.jobs`: no job was ever submitted to it). So upgrading
#: factoryctl does not lock readers out of a store until the controller is restarted on the new version.
OLDEST_READABLE_SCHEMA = 1
