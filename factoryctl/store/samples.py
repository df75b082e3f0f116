"""The write side of the telemetry tables: raw samples in, 1-minute rollups made, old rows pruned.

This is the controller's hot path, so it is kept together and kept lean: a batch of node samples becomes one
narrow integer row per GPU per interval, keyed (node, GPU, time) so a sample written twice is stored once, in one
transaction with the batch's node-state changes and events. Rollups keep min/mean/max per finished minute for
the long window, and retention never prunes a raw row that has not been rolled up yet.

Wall clocks step (NTP, a wrong RTC at boot), and the rows are stamped with them. Three rules keep a step from
losing history: retention is given the forward steps the controller saw (`retention_cut`), so rows stamped before a
+1 day step are pruned once they are really that old, not at once; a rollup mark ahead of the clock (the clock went
back) is brought back to it; and rows written into minutes already rolled up (a step back, a late or skewed node)
are rolled up again: recomputed while their minute's raw rows are all kept, merged into the rollup where the
minute's older rows were pruned already.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from factoryctl.model.telemetry import NodeSample
from factoryctl.store import rows
from factoryctl.store.connection import StoreConnection
from factoryctl.store.logs import insert_event
from factoryctl.store.nodes import SAMPLES_STORED_AT, update_node_state
from factoryctl.store.rows import RAW_COLUMNS, ROLLUP_METRICS, Event, NodeState, to_ms

ROLLUP_LAG_MIN = 2  # minutes not rolled up yet, so late samples still land in their minute
#: What an SQLite INTEGER holds. A GPU fact past it (an agent's `power_limit_w: 10**30`) is stored as unknown: the
#: writer's per-sample fallback checks only the raw columns, so SQLite's OverflowError here would fail every batch.
_INT64 = range(-(2**63), 2**63)
#: meta keys: the first minute not rolled up yet; the highest raw cut retention applied (minutes before it hold only
#: rows written since, which a rollup merges into their minute).
ROLLUP_MARK = "rollup_upto_min"
PRUNED_BELOW = "raw_pruned_below_ms"


def retention_cut(now: float, retention_s: float, steps: Sequence[tuple[float, float]] = ()) -> float:
    """The time before which rows are older than `retention_s`, allowing for forward steps of the wall clock.

    `steps` are (the time the clock stepped, in the clock's time before the step; seconds it jumped ahead), oldest
    first. Rows stamped before a step are that much older in the clock's time than they are in fact: they are cut
    on the old time until all of them are past retention, and only then does the cut follow the clock.
    """
    ahead = sum(jump for _, jump in steps)
    for at, jump in steps:
        cut = now - ahead - retention_s
        if cut < at:
            return cut
        ahead -= jump
    return now - retention_s


class SampleWrites(StoreConnection):
    """Storing sample batches, rolling raw rows up to minutes, and pruning by retention."""

    #: The oldest sample time (ms) this connection wrote since its last rollup: a late row in a minute rolled up
    #: already makes the next rollup start there.
    _written_from_ms: int | None = None

    def write(
        self,
        samples: Sequence[NodeSample] = (),
        slow: Sequence[bool] | None = None,
        states: Sequence[NodeState] = (),
        events: Sequence[Event] = (),
        stored_at: float | None = None,
    ) -> int:
        """Store samples (raw rows, GPU facts, latest), state changes and events in one transaction.

        `slow[i]` says whether sample i carries the slow tier (temperature, ECC). Returns the raw rows inserted;
        a row already stored for the same node, GPU and time is ignored, so a replayed batch adds nothing.
        With samples, `stored_at` (default: now) is recorded as when the newest sample was stored: on the writer's
        clock, so `controller status` judges freshness by it and not by a node's clock, which may be ahead.
        """
        flags = list(slow) if slow is not None else [True] * len(samples)
        with self._transaction("samples") as db:
            bits = self._reason_bits_for(db, samples)
            raw: list[tuple[Any, ...]] = []
            latest: dict[int, tuple[Any, ...]] = {}
            for sample, with_slow in zip(samples, flags, strict=True):
                node_id = self._node_id(db, sample.node)
                t_ms = to_ms(sample.time)
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
                update_node_state(db, self._node_id(db, state.node), state)
            for event in events:
                insert_event(db, event)
            if samples:
                at = stored_at if stored_at is not None else time.time()
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (SAMPLES_STORED_AT, repr(at)))
            oldest = min((row[2] for row in raw), default=None)
            if oldest is not None and (self._written_from_ms is None or oldest < self._written_from_ms):
                self._written_from_ms = oldest  # set before the commit: a failed one only makes a rollup start early
        return inserted

    def _upsert_gpu_info(self, db: sqlite3.Connection, node_id: int, idx: int, info: tuple[Any, ...], t: int) -> None:
        key = (node_id, idx)
        if self._gpu_info.get(key) == info:
            return
        if all(v is None for v in info[2:]) and key in self._gpu_info:
            return  # a lost GPU reports nothing (beyond the UUID and name the writer kept): keep what we knew
        db.execute(
            "INSERT OR REPLACE INTO gpu (node_id, idx, uuid, name, memory_total_mib, power_limit_w, power_limit_min_w,"
            " power_limit_max_w, power_limit_default_w, temperature_slowdown_c, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, idx, *(None if type(v) is int and v not in _INT64 else v for v in info), t),
        )
        self._gpu_info[key] = info

    def rollup(self, now: float | None = None) -> int:
        """Roll raw rows up to 1-minute min/mean/max, for every finished minute not rolled up yet.

        It starts at the mark it left, or earlier where rows were written since into minutes it had rolled up. A mark
        ahead of `now` (the clock went back, and rows written since may be in any minute) makes it start again at the
        oldest raw row, once: those minutes are recomputed (or merged where pruned), and the mark comes back to `now`.
        """
        upto = int((now if now is not None else time.time()) // 60) - ROLLUP_LAG_MIN
        mark = self.get_meta(ROLLUP_MARK)
        pruned = self.get_meta(PRUNED_BELOW)
        merge_below = int(pruned) // 60000 if pruned is not None else None
        pairs = self._gpu_pairs()
        written = 0
        with self._transaction("rollup") as db:
            start = int(mark) if mark is not None else upto
            if mark is None or start > upto:  # none yet, or ahead of the clock: it went back, rows may be anywhere
                oldest = db.execute("SELECT MIN(t_ms) FROM sample").fetchone()[0]
                start = oldest // 60000 if oldest is not None else upto
            late = self._written_from_ms
            if late is not None:
                start = min(start, late // 60000)
            for node_id, gpu in pairs if start < upto else ():
                written += _roll_minutes(db, node_id, gpu, start, upto, merge_below)
            if mark is None or int(mark) != upto:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (ROLLUP_MARK, str(upto)))
            if self._written_from_ms == late:  # rolled up (the lock keeps writes out until the commit)
                self._written_from_ms = None
        return written

    def prune(
        self,
        raw_retention_s: float,
        rollup_retention_s: float,
        now: float | None = None,
        steps: Sequence[tuple[float, float]] = (),
    ) -> tuple[int, int]:
        """Delete raw rows older than their window (only once rolled up) and rollups and events older than theirs.

        `steps` are the wall clock's forward steps (see `retention_cut`): rows stamped before one are not pruned
        for it. Raw rows go by whole minutes, so a minute's raw rows are either all kept or all gone.
        """
        now = now if now is not None else time.time()
        mark = self.get_meta(ROLLUP_MARK)
        raw_cut = int(retention_cut(now, raw_retention_s, steps) // 60) * 60000
        raw_cut = min(raw_cut, int(mark) * 60000 if mark is not None else 0)  # never prune what is not rolled up
        rollup_cut = int(retention_cut(now, rollup_retention_s, steps) // 60)
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
            before = db.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_BELOW,)).fetchone()
            if before is None or int(before[0]) < raw_cut:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (PRUNED_BELOW, str(raw_cut)))
        return raw_deleted, rollup_deleted


_AGGREGATES = ", ".join(
    f"MIN({m.column}), CAST(ROUND(AVG({m.column})) AS INTEGER), MAX({m.column})" for m in ROLLUP_METRICS
)
_TARGETS = ", ".join(f"{m.column}_min, {m.column}_mean, {m.column}_max" for m in ROLLUP_METRICS)
_SELECT = (
    f"SELECT node_id, gpu, t_ms / 60000, COUNT(*), {_AGGREGATES} FROM sample"
    " WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ? GROUP BY node_id, gpu, t_ms / 60000"
)


def _merged(column: str) -> str:
    """SET clauses merging a minute's new rows (`excluded`) into its stored rollup; NULL means no value."""
    low, mean, high = (f"{column}_{part}" for part in ("min", "mean", "max"))
    both = f"{mean} IS NOT NULL AND excluded.{mean} IS NOT NULL"
    return (
        f"{low} = COALESCE(MIN({low}, excluded.{low}), {low}, excluded.{low}), "
        f"{high} = COALESCE(MAX({high}, excluded.{high}), {high}, excluded.{high}), "
        f"{mean} = CASE WHEN {both} THEN CAST(ROUND(({mean} * n + excluded.{mean} * excluded.n) * 1.0"
        f" / (n + excluded.n)) AS INTEGER) ELSE COALESCE({mean}, excluded.{mean}) END"
    )


_MERGE = ", ".join(_merged(m.column) for m in ROLLUP_METRICS) + ", n = n + excluded.n"


def _roll_minutes(
    db: sqlite3.Connection, node_id: int, gpu: int, start: int, upto: int, merge_below: int | None
) -> int:
    """Roll up one GPU's minutes [start, upto); returns the rollup rows written.

    A minute from `merge_below` on still has all its raw rows, so its rollup is computed afresh; a minute before it
    had its raw rows pruned, so the rows it holds were written since: they are merged into its rollup and deleted.
    """
    split = min(max(start, merge_below if merge_below is not None else start), upto)
    written = 0
    if split < upto:
        cursor = db.execute(
            f"INSERT OR REPLACE INTO rollup (node_id, gpu, t_min, n, {_TARGETS}) {_SELECT}",
            (node_id, gpu, split * 60000, upto * 60000),
        )
        written += max(cursor.rowcount, 0)
    if start < split:
        window = (node_id, gpu, start * 60000, split * 60000)
        cursor = db.execute(
            f"INSERT INTO rollup (node_id, gpu, t_min, n, {_TARGETS}) {_SELECT}"
            f" ON CONFLICT (node_id, gpu, t_min) DO UPDATE SET {_MERGE}",
            window,
        )
        written += max(cursor.rowcount, 0)
        db.execute("DELETE FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?", window)
    return written
