"""The write side of the telemetry tables: raw samples in, 1-minute rollups made, old rows pruned.

This is the controller's hot path, so it is kept together and kept lean: a batch of node samples becomes one
narrow integer row per GPU per interval, keyed (node, GPU, time) so a sample written twice is stored once, in one
transaction with the batch's node-state changes and events. Rollups keep min/mean/max per finished minute for
the long window, and retention never prunes a raw row that has not been rolled up yet.
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
from factoryctl.store.nodes import update_node_state
from factoryctl.store.rows import RAW_COLUMNS, ROLLUP_METRICS, Event, NodeState, to_ms

ROLLUP_LAG_MIN = 2  # minutes not rolled up yet, so late samples still land in their minute
#: What an SQLite INTEGER holds. A GPU fact past it (an agent's `power_limit_w: 10**30`) is stored as unknown: the
#: writer's per-sample fallback checks only the raw columns, so SQLite's OverflowError here would fail every batch.
_INT64 = range(-(2**63), 2**63)


class SampleWrites(StoreConnection):
    """Storing sample batches, rolling raw rows up to minutes, and pruning by retention."""

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
        raw_cut = to_ms(now - raw_retention_s)
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
