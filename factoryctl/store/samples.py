"""The write side of the telemetry tables: raw samples in, 1-minute rollups made, old rows pruned.

This is the controller's hot path, so it is kept together and kept lean: a batch of node samples becomes one
narrow integer row per GPU per interval, keyed (node, GPU, time) so a sample written twice is stored once, in one
transaction with the batch's node-state changes and events. Rollups keep min/mean/max per finished minute for
the long window, with how many rows had each metric (the slow tier has a value in few of them) and the time the
power samples cover, from their timestamps (energy bills a minute for it: a minute the controller started in at :31
is not a whole minute), and retention never prunes a raw row that has not been rolled up yet. That time depends on
the sample after the minute's last: a minute rolled up before it arrived (a late batch, an interval over two minutes)
is noted per GPU, and its time brought up to date by the rollup after it does.

Wall clocks step (NTP, a wrong RTC at boot), and the rows are stamped with them. Three rules keep a step from
losing history: retention is given the forward steps the controller saw (`retention_cut`, kept in the meta table
across restarts), so rows stamped before a +1 day step are pruned once they are really that old, not at once; a
rollup mark ahead of the clock (the clock went back) is brought back to it; and rows written into minutes already
rolled up (a step back, a late or skewed node) are noted per GPU in the meta table, in the write's transaction, and
that GPU alone is rolled up again from there. Raw rows are deleted by retention only. A minute whose raw rows were
pruned keeps its rollup: rows written into it later are left out of it (and pruned as the old rows they are).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factoryctl.model.telemetry import NodeSample
from factoryctl.store import rows
from factoryctl.store.connection import StoreConnection
from factoryctl.store.coverage import covered_by_minute
from factoryctl.store.logs import insert_event
from factoryctl.store.nodes import SAMPLES_STORED_AT, update_node_state
from factoryctl.store.rows import RAW_COLUMNS, ROLLUP_METRICS, ClockStep, Event, NodeState, to_ms

ROLLUP_LAG_MIN = 2  # minutes not rolled up yet, so late samples still land in their minute
#: What an SQLite INTEGER holds. A GPU fact past it (an agent's `power_limit_w: 10**30`) is stored as unknown: the
#: writer's per-sample fallback checks only the raw columns, so SQLite's OverflowError here would fail every batch.
_INT64 = range(-(2**63), 2**63)
#: meta keys: the first minute not rolled up yet; the minute after the newest raw row retention deleted (minutes
#: before it may have lost raw rows: a rollup there is never recomputed from what is left).
ROLLUP_MARK = "rollup_upto_min"
PRUNED_BELOW = "raw_pruned_below_ms"
#: meta keys: where a rollup that moved the mark started, until every GPU is rolled up (a crash in between redoes
#: it); per GPU ("rollup_redo:<node id>:<gpu>"), the oldest minute written before the mark since it was rolled up;
#: per GPU ("rollup_open:<node id>:<gpu>"), the minute of its newest power sample when that minute was rolled up
#: with no sample after it yet (`_settle_open_minute`); the wall clock's forward steps still in force (JSON [[at,
#: seconds], ...]).
ROLLING_FROM = "rollup_rolling_from_min"
REDO_PREFIX = "rollup_redo:"
OPEN_PREFIX = "rollup_open:"
CLOCK_STEPS = "clock_steps"


def retention_cut(now: float, retention_s: float, steps: Sequence[ClockStep] = ()) -> float:
    """The time before which rows are older than `retention_s`, allowing for forward steps of the wall clock.

    `steps` are the clock's forward steps (`ClockStep`: when, in the clock's time before it; seconds ahead), oldest
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


def steps_in_force(now: float, retention_s: float, steps: Sequence[ClockStep]) -> list[ClockStep]:
    """The `steps` `retention_cut` still allows for: the oldest are dropped once every row before them is past it."""
    ahead = sum(jump for _, jump in steps)
    for index, (at, jump) in enumerate(steps):
        if now - ahead - retention_s < at:
            return list(steps[index:])
        ahead -= jump
    return []


class SampleWrites(StoreConnection):
    """Storing sample batches, rolling raw rows up to minutes, and pruning by retention."""

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
                _set_meta(db, SAMPLES_STORED_AT, repr(at))
            _note_late(db, raw)
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

        It rolls up every GPU from the mark it left, and the GPUs that had rows written into minutes before the mark
        (a step back, a late or skewed node; `_note_late`) from their oldest such minute: those alone, a few GPUs per
        transaction, so a late row or a step back never re-reads the whole table under the write lock. A mark ahead
        of `now` (the clock went back) comes back to `now`; the rows written since are all such late rows.
        """
        upto = int((now if now is not None else time.time()) // 60) - ROLLUP_LAG_MIN
        pruned = self.get_meta(PRUNED_BELOW)
        kept_from = int(pruned) // 60000 if pruned is not None else None
        with self._transaction("rollup") as db:  # the mark moves first: rows written from here on are late or new
            mark = _meta_int(db, ROLLUP_MARK)
            start = _meta_int(db, ROLLING_FROM)
            if mark is None:  # the first rollup: from the oldest row
                oldest = db.execute("SELECT MIN(t_ms) FROM sample").fetchone()[0]
                mark = oldest // 60000 if oldest is not None else upto
            start = mark if start is None else min(start, mark)
            if start < upto:
                _set_meta(db, ROLLING_FROM, str(start))
            _set_meta(db, ROLLUP_MARK, str(upto))
        written = 0
        pairs = self._gpu_pairs()  # after the mark moved: a GPU new since has its rows noted as late
        opened = {_gpu_of(key): int(value) for key, value in self._meta_like(OPEN_PREFIX)}
        if start < upto:
            for chunk in range(0, len(pairs), _PAIRS_PER_TRANSACTION):
                with self._transaction("rollup") as db:
                    for node_id, gpu in pairs[chunk : chunk + _PAIRS_PER_TRANSACTION]:
                        written += _roll_minutes(
                            db, (node_id, gpu), start, upto, kept_from, opened.pop((node_id, gpu), None)
                        )
            with self._transaction("rollup") as db:
                db.execute("DELETE FROM meta WHERE key = ? AND value = ?", (ROLLING_FROM, str(start)))
        redo = self._meta_like(REDO_PREFIX)
        for chunk in range(0, len(redo), _PAIRS_PER_TRANSACTION):
            with self._transaction("rollup") as db:
                for key, value in redo[chunk : chunk + _PAIRS_PER_TRANSACTION]:
                    pair = _gpu_of(key)
                    if int(value) < upto:
                        written += _roll_minutes(db, pair, int(value), upto, kept_from, opened.pop(pair, None))
                    db.execute("DELETE FROM meta WHERE key = ? AND value = ?", (key, value))  # unless written again
        return written

    def _meta_like(self, prefix: str) -> list[tuple[str, str]]:
        """The (key, value) meta rows whose key starts with `prefix` (a per-GPU note)."""
        found = self._query("SELECT key, value FROM meta WHERE key LIKE ?", (prefix + "%",))
        return [(str(key), str(value)) for key, value in found]

    def prune(
        self,
        raw_retention_s: float,
        rollup_retention_s: float,
        now: float | None = None,
        steps: Sequence[ClockStep] | None = None,
    ) -> tuple[int, int]:
        """Delete raw rows older than their window (only once rolled up) and rollups and events older than theirs.

        `steps` are the wall clock's forward steps (see `retention_cut`): rows stamped before one are not pruned
        for it; None takes those a controller saved (a cron sweep while it is stopped must honour them too). Raw
        rows go by whole minutes, so a minute's raw rows are either all kept or all gone. The pruned mark is the
        minute after the newest row really deleted, not the cut: after the clock steps back, the cut a clock that
        ran ahead made is ahead of rows that are all still there.
        """
        steps = self.clock_steps() if steps is None else steps
        now = now if now is not None else time.time()
        raw_cut = int(retention_cut(now, raw_retention_s, steps) // 60) * 60000
        rollup_cut = int(retention_cut(now, rollup_retention_s, steps) // 60)
        raw_deleted = rollup_deleted = 0
        with self._transaction("prune") as db:
            raw_cut = _rolled_up_cut(db, raw_cut)  # never prune what is not rolled up
            redo = _redo_from(db)  # nor a GPU's rows waiting to be rolled up again
            newest_deleted: int | None = None
            for node_id, gpu in self._gpu_pairs():
                cut = min(raw_cut, redo[(node_id, gpu)] * 60000) if (node_id, gpu) in redo else raw_cut
                newest, raw, rolled = _prune_gpu(db, node_id, gpu, cut, rollup_cut)
                if newest is not None:
                    newest_deleted = max(newest_deleted or newest, newest)
                raw_deleted += raw
                rollup_deleted += rolled
            db.execute("DELETE FROM event WHERE t_ms < ?", (rollup_cut * 60000,))
            if newest_deleted is not None:
                _raise_pruned_below(db, (newest_deleted // 60000 + 1) * 60000)
        self._shrink_wal()
        return raw_deleted, rollup_deleted

    def _shrink_wal(self) -> None:
        """Truncate a write-ahead log past `WAL_KEPT_BYTES` (a large prune's) once every frame is checkpointed.

        A prune's one transaction writes every page it frees to the WAL (157 MB for a week of 256 GPUs), and SQLite
        keeps the file at its largest until the last connection closes: a running controller never gave it back.
        TRUNCATE waits (up to the busy timeout, 10 s, holding the write lock) for readers of an older snapshot,
        which a long `history` is; a PASSIVE checkpoint never waits, and once it has copied every frame a reader
        of an older snapshot is none, so TRUNCATE then finds nothing to wait for. A reader that kept a frame
        back leaves the log as it is until a later prune.
        """
        with self._lock, self._translate("prune"):
            if _wal_bytes(self.path) <= WAL_KEPT_BYTES:
                return
            busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and frames == copied:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def clock_steps(self) -> list[ClockStep]:
        """The wall clock's forward steps a controller saw (`save_clock_steps`), for the next one after a restart."""
        found = self.get_meta(CLOCK_STEPS)
        try:
            return [ClockStep(float(at), float(jump)) for at, jump in json.loads(found)] if found is not None else []
        except (ValueError, TypeError):  # not ours to fail on: retention then follows the clock
            return []

    def save_clock_steps(self, steps: Sequence[ClockStep]) -> None:
        """Keep the wall clock's forward steps still in force, so a restart does not prune what they protect."""
        self.set_meta(CLOCK_STEPS, json.dumps([[at, jump] for at, jump in steps]))


#: The write-ahead log a prune leaves as it is: SQLite checkpoints it at about 4 MB (1,000 pages) when it is written.
WAL_KEPT_BYTES = 16 * 1024 * 1024


def _wal_bytes(path: Path) -> int:
    """The size of the store's write-ahead log (0 when there is none)."""
    try:
        return os.path.getsize(f"{path}-wal")
    except OSError:
        return 0


#: Pairs (node, GPU) rolled up per transaction: the write lock is held for a bounded time, not a fleet's rollup.
_PAIRS_PER_TRANSACTION = 64


def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _meta_int(db: sqlite3.Connection, key: str) -> int | None:
    found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(found[0]) if found is not None else None


def _rolled_up_cut(db: sqlite3.Connection, raw_cut: int) -> int:
    """`raw_cut` (ms), held back to the rollup mark and to a rollup in progress: raw rows not rolled up are kept."""
    mark, rolling = _meta_int(db, ROLLUP_MARK), _meta_int(db, ROLLING_FROM)
    raw_cut = min(raw_cut, (mark or 0) * 60000)  # no mark: nothing is rolled up
    return min(raw_cut, rolling * 60000) if rolling is not None else raw_cut


def _prune_gpu(
    db: sqlite3.Connection, node_id: int, gpu: int, cut: int, rollup_cut: int
) -> tuple[int | None, int, int]:
    """Delete one GPU's raw rows before `cut` (ms) and rollups before `rollup_cut` (minute).

    Returns the newest raw row's time deleted (None: none was), and the raw and rollup rows deleted.
    """
    newest = db.execute(
        "SELECT MAX(t_ms) FROM sample WHERE node_id = ? AND gpu = ? AND t_ms < ?", (node_id, gpu, cut)
    ).fetchone()[0]
    raw = db.execute("DELETE FROM sample WHERE node_id = ? AND gpu = ? AND t_ms < ?", (node_id, gpu, cut)).rowcount
    rolled = db.execute(
        "DELETE FROM rollup WHERE node_id = ? AND gpu = ? AND t_min < ?", (node_id, gpu, rollup_cut)
    ).rowcount
    return newest, max(raw, 0), max(rolled, 0)


def _raise_pruned_below(db: sqlite3.Connection, pruned_below: int) -> None:
    """Move the pruned mark (`PRUNED_BELOW`, ms) up to `pruned_below`; it never moves back."""
    before = _meta_int(db, PRUNED_BELOW)
    if before is None or before < pruned_below:
        _set_meta(db, PRUNED_BELOW, str(pruned_below))


def _redo_from(db: sqlite3.Connection) -> dict[tuple[int, int], int]:
    """Each GPU's oldest minute written since it was rolled up, where that is before the rollup mark."""
    found: dict[tuple[int, int], int] = {}
    for key, value in db.execute("SELECT key, value FROM meta WHERE key LIKE ?", (REDO_PREFIX + "%",)):
        found[_gpu_of(str(key))] = int(value)
    return found


def _gpu_of(key: str) -> tuple[int, int]:
    """(node id, GPU) from a per-GPU meta key ("rollup_redo:<node id>:<gpu>", "rollup_open:<node id>:<gpu>")."""
    _, node_id, gpu = key.split(":")
    return int(node_id), int(gpu)


def _note_late(db: sqlite3.Connection, raw: Sequence[tuple[Any, ...]]) -> None:
    """Record, per GPU, the oldest minute of `raw` before the rollup mark: the next rollup rolls it up again.

    In the meta table, in the write's own transaction, so a restart before that rollup loses nothing.
    """
    mark = _meta_int(db, ROLLUP_MARK)
    if mark is None:
        return  # no rollup yet: the first one starts at the oldest row
    oldest: dict[tuple[int, int], int] = {}
    for node_id, gpu, t_ms, *_ in raw:
        minute = t_ms // 60000
        if minute < mark and minute < oldest.get((node_id, gpu), mark):
            oldest[(node_id, gpu)] = minute
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value ="
        " CAST(MIN(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
        [(f"{REDO_PREFIX}{node_id}:{gpu}", str(minute)) for (node_id, gpu), minute in oldest.items()],
    )


_AGGREGATES = ", ".join(
    f"MIN({m.column}), CAST(ROUND(AVG({m.column})) AS INTEGER), MAX({m.column}), COUNT({m.column})"
    for m in ROLLUP_METRICS
)
#: Each metric's min, mean, max and count of rows with a value: `n` counts the minute's rows, and a slow-tier metric
#: (temperature) has a value in one in five, so a mean over minutes and raw rows weights each minute by its own count.
_TARGETS = ", ".join(f"{m.column}_min, {m.column}_mean, {m.column}_max, {m.column}_n" for m in ROLLUP_METRICS)

#: How far before and after the minutes rolled up their neighbouring power samples are looked for: two of the longest
#: sampling interval (3600 s) and a minute. A gap longer than that is a silence whatever the interval, and the search
#: stays bounded for a GPU without power readings (a lost GPU, power not supported), which would scan its whole raw
#: history every minute.
_AROUND_MS = 2 * 3600 * 1000 + 60 * 1000

#: One GPU's rows in and around the minutes [:first_ms, :last_ms): their times, and whether they have power, from the
#: second power sample before to the second after (within `_AROUND_MS`), for the gaps next to theirs
#: (`coverage.covered_by_minute`).
_ROW_TIMES = (
    "SELECT t_ms, power_mw IS NOT NULL FROM sample WHERE node_id = :node AND gpu = :gpu"
    " AND t_ms >= COALESCE((SELECT t_ms FROM sample WHERE node_id = :node AND gpu = :gpu AND t_ms < :first_ms"
    f" AND t_ms >= :first_ms - {_AROUND_MS} AND power_mw IS NOT NULL ORDER BY t_ms DESC LIMIT 1 OFFSET 1),"
    f" :first_ms - {_AROUND_MS})"
    " AND t_ms <= COALESCE((SELECT t_ms FROM sample WHERE node_id = :node AND gpu = :gpu AND t_ms >= :last_ms"
    f" AND t_ms < :last_ms + {_AROUND_MS} AND power_mw IS NOT NULL ORDER BY t_ms LIMIT 1 OFFSET 1),"
    f" :last_ms + {_AROUND_MS})"
    " ORDER BY t_ms"
)
#: The rollup row of one GPU's minute [:first_ms, :last_ms), with the time its power samples cover (`:covered`), to be
#: prefixed with INSERT OR REPLACE or OR IGNORE (which keeps an existing row whole, its time with it).
_ROLLED = (
    f" INTO rollup (node_id, gpu, t_min, n, {_TARGETS}, power_covered_ms)"
    f" SELECT node_id, gpu, t_ms / 60000, COUNT(*), {_AGGREGATES}, :covered FROM sample"
    " WHERE node_id = :node AND gpu = :gpu AND t_ms >= :first_ms AND t_ms < :last_ms GROUP BY t_ms / 60000"
)


def _roll_minutes(
    db: sqlite3.Connection, pair: tuple[int, int], start: int, upto: int, kept_from: int | None, open_minute: int | None
) -> int:
    """Roll up one GPU's minutes [start, upto); returns the rollup rows written.

    A minute from `kept_from` on still has all its raw rows, so its rollup is computed afresh. A minute before it
    may have had its raw rows pruned: it gets a rollup only if it has none (its rows are all written since); rows
    written into a minute already rolled up and pruned are left out, and pruned as the old rows they are.
    `open_minute`: the GPU's minute rolled up before a sample after it arrived (`_settle_open_minute`), if any.
    """
    node_id, gpu = pair
    if open_minute is not None and not (
        open_minute < start and _settle_open_minute(db, pair, open_minute, start, kept_from)
    ):
        db.execute("DELETE FROM meta WHERE key = ?", (f"{OPEN_PREFIX}{node_id}:{gpu}",))
    split = min(max(start, kept_from if kept_from is not None else start), upto)
    written = 0
    for first, last, verb in ((split, upto, "INSERT OR REPLACE"), (start, split, "INSERT OR IGNORE")):
        for chunk in range(first, last, _MINUTES_PER_READ):
            written += _roll_chunk(db, node_id, gpu, chunk, min(chunk + _MINUTES_PER_READ, last), verb)
    return written


def _settle_open_minute(
    db: sqlite3.Connection, pair: tuple[int, int], minute: int, start: int, kept_from: int | None
) -> bool:
    """Bring the time covered of a GPU's `minute` up to date; whether it is still open (no power sample after it).

    The minute was rolled up with its newest sample last of all (two minutes after it ended: a late batch, an
    interval over two minutes, a node gone quiet), so that sample counted for the interval before it (a minute when
    alone), where it counts until the next one and what of that reaches past the minute is the next one's minute's
    (`coverage.covered_by_minute`): that minute counted it again, or the first sample of a run at 300 s counted one
    minute of five. Only the time is updated, and only if it changed. A minute whose raw rows (or those of the two
    samples before it) may have been pruned keeps its rollup as it is; one with no sample after it within
    `_AROUND_MS` of `start` is closed: a sample that late follows a silence, which the newest's count allows for.
    """
    node_id, gpu = pair
    if kept_from is not None and minute < kept_from:
        return False
    bounds = {"node": node_id, "gpu": gpu, "first_ms": minute * 60000, "last_ms": (minute + 1) * 60000}
    times = [t_ms for t_ms, powered in db.execute(_ROW_TIMES, bounds).fetchall() if powered]
    pruned_before = kept_from is not None and (minute - kept_from) * 60000 < _AROUND_MS
    if pruned_before and sum(t < minute * 60000 for t in times) < 2:  # the samples before it may be gone
        return False
    covered = covered_by_minute(times, minute, minute + 1).get(minute, 0)
    db.execute(
        "UPDATE rollup SET power_covered_ms = ? WHERE node_id = ? AND gpu = ? AND t_min = ?"
        " AND power_covered_ms IS NOT NULL AND power_covered_ms != ?",
        (covered, node_id, gpu, minute, covered),
    )
    return bool(times) and times[-1] // 60000 == minute and (minute + 1) * 60000 + _AROUND_MS > start * 60000


#: Minutes whose rows' times are read at once (`_roll_chunk`): a first rollup of days of raw rows holds an hour's of
#: them in memory at a time.
_MINUTES_PER_READ = 60


def _roll_chunk(db: sqlite3.Connection, node_id: int, gpu: int, first: int, last: int, verb: str) -> int:
    """Roll up one GPU's minutes [first, last) with `verb`, each with the time its power samples cover.

    Returns the rollup rows written. One statement per minute with rows (the controller rolls up one minute at a time),
    so each row is written with its time; only a minute whose newest sample had none after it yet is noted, for its
    time to be brought up to date later (`_settle_open_minute`).
    """
    bounds = {"node": node_id, "gpu": gpu, "first_ms": first * 60000, "last_ms": last * 60000}
    found: list[tuple[int, int]] = db.execute(_ROW_TIMES, bounds).fetchall()  # (t_ms, 1 if it has power)
    times = [t_ms for t_ms, powered in found if powered]
    covered = covered_by_minute(times, first, last)
    if times and first * 60000 <= times[-1] < last * 60000:  # no sample after the newest yet: it counts a guess
        _set_meta(db, f"{OPEN_PREFIX}{node_id}:{gpu}", str(times[-1] // 60000))
    written = 0
    for minute in sorted({t_ms // 60000 for t_ms, _ in found if first <= t_ms // 60000 < last}):
        one = {**bounds, "first_ms": minute * 60000, "last_ms": (minute + 1) * 60000, "covered": covered.get(minute, 0)}
        written += max(db.execute(verb + _ROLLED, one).rowcount, 0)
    return written
