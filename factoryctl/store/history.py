"""The read side of the telemetry tables: metric history and raw rows for export (energy: `energy.py`, on top).

Every read here spans two tables with different resolutions: raw rows where they are still kept, 1-minute rollups
before the oldest raw row. Keeping the queries that stitch the two together in one module keeps that seam in one
place (`factoryctl telemetry history / export`, the dashboard's sparklines and the metrics endpoint all read through
it; `energy.py` bills joules across the same seam, `_raw_from`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from factoryctl.store import rows
from factoryctl.store.connection import StoreConnection
from factoryctl.store.history_buckets import HistoryRow, python_bucketed, sql_bucketed, sql_buckets_fit
from factoryctl.store.rows import METRICS, RAW_COLUMNS, Point, Series, to_ms

#: Raw rows `export` reads per query: a node's rows over hours are millions, and are never all in memory at once.
EXPORT_BATCH = 2_000


@dataclass(frozen=True)
class CountedPoint(Point):
    """A history point with how many samples it stands for: 1 for a raw row, a minute's or a bucket's count else.

    A window reaching past the raw window mixes raw rows with 1-minute rollups: a summary over the points (the
    table's mean and trend) weights each by `samples`, or one rolled-up minute would count as much as one second.
    """

    samples: int = 1


@dataclass(frozen=True)
class SeriesExtent:
    """What one GPU's history holds in a window without a step: points, first and last time, last value."""

    node: str
    gpu: int
    points: int
    first: float
    last: float
    last_value: float | None


class HistoryQueries(StoreConnection):
    """Reading stored telemetry back: series per GPU and raw rows as dicts."""

    def history(
        self,
        nodes: Sequence[str],
        metric: str,
        since: float,
        until: float,
        step: float | None = None,
        gpus: Sequence[int] | None = None,
    ) -> list[Series]:
        """One series per GPU: raw points where raw rows are kept, 1-minute means before that; bucketed by `step`.

        Every point is a `CountedPoint` with its min and max (a raw point's are its value). No point is before
        `since`: a rolled-up minute that starts before it is left out, as the raw rows before it are. Buckets of a
        whole number of seconds are summed by SQLite (`history_buckets`), others here.
        """
        spec = METRICS[metric]
        series: list[Series] = []
        for name, node_id, gpu in self._selected_pairs(nodes, gpus):
            parts = self._window_parts(node_id, gpu, spec, to_ms(since), to_ms(until))
            if step and sql_buckets_fit(step):
                found = sql_bucketed(self._query, (node_id, gpu), spec, *parts, step, self._rollup_count(spec))
            else:
                found = self._gpu_history(node_id, gpu, spec, *parts)
                found = python_bucketed(found, step) if step else found
            series.append(Series(name, gpu, metric, [CountedPoint(*row) for row in found]))
        return series

    def history_size(
        self, nodes: Sequence[str], metric: str, since: float, until: float, gpus: Sequence[int] | None = None
    ) -> int:
        """How many points `history` (without a step) would return: counted, not read, to bound a query first."""
        return sum(extent.points for extent in self.history_extents(nodes, metric, since, until, gpus))

    def history_extents(
        self, nodes: Sequence[str], metric: str, since: float, until: float, gpus: Sequence[int] | None = None
    ) -> list[SeriesExtent]:
        """Per GPU with points: how many `history` (without a step) returns, its first and last, and the last value.

        Counted in SQL, not read: to bound a query before it is read, and for a bucketed summary to say what was
        stored (points, first, last) rather than what its buckets are.
        """
        spec = METRICS[metric]
        out: list[SeriesExtent] = []
        for name, node_id, gpu in self._selected_pairs(nodes, gpus):
            minutes, (raw_from, end) = self._window_parts(node_id, gpu, spec, to_ms(since), to_ms(until))
            col, pair = spec.column, (node_id, gpu)
            rolled: tuple[Any, ...] = (0, None, None)
            if minutes is not None:
                rolled = self._query(
                    f"SELECT COUNT(*), MIN(t_min) * 60.0, MAX(t_min) * 60.0 FROM rollup WHERE node_id = ? AND gpu = ?"
                    f" AND t_min >= ? AND t_min < ? AND {col}_mean IS NOT NULL",
                    (*pair, *minutes),
                )[0]
            raw = self._query(
                f"SELECT COUNT(*), MIN(t_ms) / 1000.0, MAX(t_ms) / 1000.0 FROM sample WHERE node_id = ? AND gpu = ?"
                f" AND t_ms >= ? AND t_ms < ? AND {col} IS NOT NULL",
                (*pair, raw_from, end),
            )[0]
            if rolled[0] + raw[0]:
                last = self._last_value(pair, spec, minutes, (raw_from, end), from_raw=raw[0] > 0)
                first, final = float(rolled[1] if rolled[0] else raw[1]), float(raw[2] if raw[0] else rolled[2])
                out.append(SeriesExtent(name, gpu, int(rolled[0] + raw[0]), first, final, last))
        return out

    def _last_value(
        self,
        pair: tuple[int, int],
        spec: rows.Metric,
        minutes: tuple[int, int] | None,
        raw_ms: tuple[int, int],
        from_raw: bool,
    ) -> float | None:
        """The value of a GPU's last point in the window: its last raw row, else its last rolled-up minute's mean."""
        col = spec.column
        if from_raw:
            sql = f"SELECT {col} FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            found = self._query(f"{sql} AND {col} IS NOT NULL ORDER BY t_ms DESC LIMIT 1", (*pair, *raw_ms))
        else:
            sql = f"SELECT {col}_mean FROM rollup WHERE node_id = ? AND gpu = ? AND t_min >= ? AND t_min < ?"
            found = self._query(
                f"{sql} AND {col}_mean IS NOT NULL ORDER BY t_min DESC LIMIT 1", (*pair, *(minutes or (0, 0)))
            )
        return rows.decode(found[0][0], spec.scale) if found else None

    def _selected_pairs(self, nodes: Sequence[str], gpus: Sequence[int] | None) -> Iterator[tuple[str, int, int]]:
        """(node name, node id, GPU) of the nodes' stored GPUs, in the nodes' order, only `gpus` when given."""
        ids = self._known_node_ids(nodes)
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            for _, gpu in self._gpu_pairs([node_id]):
                if gpus is None or gpu in gpus:
                    yield name, node_id, gpu

    def _window_parts(
        self, node_id: int, gpu: int, spec: rows.Metric, start: int, end: int
    ) -> tuple[tuple[int, int] | None, tuple[int, int]]:
        """Where a window's history comes from: [first, stop) rollup minutes (None: none), [from, end) raw ms.

        Rollup minutes start at or after `start` (a minute starting before it would put a point before `--since`)
        and stop before the oldest raw row's minute (`_rollup_end`).
        """
        raw_from = self._raw_from(node_id, gpu, start, end)
        minutes = (-(-start // 60000), _rollup_end(raw_from, end)) if spec.rollup and start < raw_from else None
        return minutes, (raw_from, end)

    def _rollup_count(self, spec: rows.Metric) -> str:
        """The SQL of a rollup minute's samples of `spec`.

        {col}_n is NULL in a rollup made before schema 2, and missing in a schema-1 store a reader opened: the minute
        is weighted by all its rows then.
        """
        return f"COALESCE({spec.column}_n, n)" if self.schema_version >= 2 else "n"

    def _raw_from(self, node_id: int, gpu: int, start: int, end: int) -> int:
        """Where the window's raw rows begin (ms): `start`, or the oldest raw row if later; `end` if none."""
        oldest = self._query("SELECT MIN(t_ms) FROM sample WHERE node_id = ? AND gpu = ?", (node_id, gpu))[0][0]
        return min(max(start, oldest), end) if oldest is not None else end  # never past the window's end

    def _gpu_history(
        self,
        node_id: int,
        gpu: int,
        spec: rows.Metric,
        minutes: tuple[int, int] | None,
        raw_ms: tuple[int, int],
    ) -> list[HistoryRow]:
        """(time, mean, min, max, n) rows, rollups of `minutes` then raw rows in `raw_ms`, in time order."""
        out: list[HistoryRow] = []
        if minutes is not None:
            col = spec.column
            found = self._query(
                f"SELECT t_min, {col}_mean, {col}_min, {col}_max, {self._rollup_count(spec)} FROM rollup"
                f" WHERE node_id = ? AND gpu = ? AND t_min >= ? AND t_min < ? AND {col}_mean IS NOT NULL"
                " ORDER BY t_min",
                (node_id, gpu, *minutes),
            )
            for t_min, mean, low, high, n in found:
                out.append((t_min * 60.0, *(rows.decode(v, spec.scale) for v in (mean, low, high)), int(n)))
        found = self._query(
            f"SELECT t_ms, {spec.column} FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            f" AND {spec.column} IS NOT NULL ORDER BY t_ms",
            (node_id, gpu, *raw_ms),
        )
        for t_ms, value in found:
            v = rows.decode(value, spec.scale)
            out.append((t_ms / 1000, v, v, v, 1))
        return out

    def export(self, nodes: Sequence[str], since: float, until: float) -> Iterator[dict[str, Any]]:
        """Raw rows as dicts (time, node, gpu, every metric, throttle_reasons), by node, GPU and time, streamed."""
        ids = self._known_node_ids(nodes)
        with self._lock, self._translate("export"):
            self._load_reasons()
        bit_names = {bit: name for name, bit in self._reason_bits.items()}
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            for _, gpu in self._gpu_pairs([node_id]):
                for t_ms, *values in self._export_rows(node_id, gpu, to_ms(since), to_ms(until)):
                    item: dict[str, Any] = {"time": t_ms / 1000, "node": name, "gpu": gpu}
                    for metric, value in zip(METRICS.values(), values[:-1], strict=True):
                        item[metric.name] = rows.decode(value, metric.scale)
                    item["throttle_reasons"] = rows.reasons_from_mask(values[-1], bit_names)
                    yield item

    def _export_rows(self, node_id: int, gpu: int, start: int, end: int) -> Iterator[tuple[Any, ...]]:
        """One GPU's raw rows in [start, end) ms, in time order, read `EXPORT_BATCH` rows per query.

        Each batch resumes after the last row's time (the key's order), so memory stays bounded however long the
        window, and no read transaction is held open while the caller writes the rows out.
        """
        columns = ", ".join(RAW_COLUMNS)
        after = start - 1
        while True:
            batch = self._query(
                f"SELECT t_ms, {columns}, throttle FROM sample WHERE node_id = ? AND gpu = ? AND t_ms > ?"
                " AND t_ms < ? ORDER BY t_ms LIMIT ?",
                (node_id, gpu, after, end, EXPORT_BATCH),
                "export",
            )
            yield from batch
            if len(batch) < EXPORT_BATCH:
                return
            after = int(batch[-1][0])


def _rollup_end(raw_from: int, end: int) -> int:
    """The first minute a window's history does not take from the rollup (ms bounds in, a minute number out).

    The minute the oldest raw row is in, when the window has raw rows: that minute has its rollup too (a controller
    started mid-minute), and taking both counted its raw samples twice. Without raw rows (`raw_from` is the window's
    end), every minute that starts before the end.
    """
    return raw_from // 60000 if raw_from < end else -(-raw_from // 60000)
