"""The read side of the telemetry tables: metric history, energy used, and raw rows for export.

Every read here spans two tables with different resolutions: raw rows where they are still kept, 1-minute rollups
before the oldest raw row. Keeping the queries that stitch the two together in one module keeps that seam in one
place (`factoryctl telemetry history / energy / export`, the dashboard's sparklines and the metrics endpoint all
read through it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from factoryctl.store import rows
from factoryctl.store.connection import StoreConnection
from factoryctl.store.rows import METRICS, RAW_COLUMNS, Point, Series, to_ms

#: (time, mean, min, max, n): one raw point (n = 1) or one rolled-up minute.
HistoryRow = tuple[float, float | None, float | None, float | None, int]


class HistoryQueries(StoreConnection):
    """Reading stored telemetry back: series per GPU, joules per GPU, raw rows as dicts."""

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

    def history_size(
        self, nodes: Sequence[str], metric: str, since: float, until: float, gpus: Sequence[int] | None = None
    ) -> int:
        """How many points `history` (without a step) would return: counted, not read, to bound a query first."""
        spec = METRICS[metric]
        start, end = to_ms(since), to_ms(until)
        ids = self._known_node_ids(nodes)
        total = 0
        for node_id, gpu in self._gpu_pairs([ids[n] for n in nodes if n in ids]):
            if gpus is not None and gpu not in gpus:
                continue
            raw_from = self._raw_from(node_id, gpu, start, end)
            if spec.rollup and start < raw_from:
                total += self._query(
                    "SELECT COUNT(*) FROM rollup WHERE node_id = ? AND gpu = ? AND t_min >= ? AND t_min * 60000 < ?",
                    (node_id, gpu, start // 60000, raw_from),
                )[0][0]
            total += self._query(
                "SELECT COUNT(*) FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?",
                (node_id, gpu, raw_from, end),
            )[0][0]
        return int(total)

    def _raw_from(self, node_id: int, gpu: int, start: int, end: int) -> int:
        """Where the window's raw rows begin (ms): `start`, or the oldest raw row if later; `end` if none."""
        oldest = self._query("SELECT MIN(t_ms) FROM sample WHERE node_id = ? AND gpu = ?", (node_id, gpu))[0][0]
        return min(max(start, oldest), end) if oldest is not None else end  # never past the window's end

    def _gpu_history(self, node_id: int, gpu: int, spec: rows.Metric, since: float, until: float) -> list[HistoryRow]:
        """(time, mean, min, max, n) rows, rollups before the oldest raw row then raw rows, in time order."""
        start, end = to_ms(since), to_ms(until)
        out: list[HistoryRow] = []
        raw_from = self._raw_from(node_id, gpu, start, end)
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
                out.append((name, gpu, *self._gpu_energy(node_id, gpu, to_ms(since), to_ms(until))))
        return out

    def _gpu_energy(self, node_id: int, gpu: int, start: int, end: int) -> tuple[float, str]:
        raw_from = self._raw_from(node_id, gpu, start, end)
        joules, sources = 0.0, []
        if start < raw_from:
            first = -(-start // 60000)
            minutes = self._query(  # the last minute before the window too: its power may hold into the window
                "SELECT t_min, power_mw_mean FROM rollup WHERE node_id = ? AND gpu = ? AND t_min < ?"
                " AND power_mw_mean IS NOT NULL ORDER BY t_min DESC LIMIT 1",
                (node_id, gpu, first),
            )[::-1] + self._query(
                "SELECT t_min, power_mw_mean FROM rollup WHERE node_id = ? AND gpu = ? AND t_min >= ? AND t_min < ?"
                " AND power_mw_mean IS NOT NULL ORDER BY t_min",
                (node_id, gpu, first, raw_from // 60000),  # whole minutes before the raw window only
            )
            if minutes:
                joules += _rollup_joules([(int(t), float(mw)) for t, mw in minutes], start, raw_from)
                sources.append("rollup")
        found = self._query(
            "SELECT t_ms, energy_mj, power_mw FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            " ORDER BY t_ms",
            (node_id, gpu, raw_from, end),
        )
        counters = [(t, e) for t, e, _ in found if e is not None]
        if len(counters) >= 2:
            joules += sum(_step(a, b) for (_, a), (_, b) in itertools.pairwise(counters)) / 1000
            joules += self._counter_edges(node_id, gpu, counters, raw_from if raw_from == start else None, end)
            sources.append("counter")
        elif len(found) >= 2:
            powers = [(t, p) for t, _, p in found if p is not None]
            joules += sum((b[0] - a[0]) / 1000 * a[1] / 1000 for a, b in itertools.pairwise(powers))
            sources.append("power")
        return joules, "+".join(sources) or "none"

    def _counter_edges(
        self, node_id: int, gpu: int, inside: Sequence[tuple[int, int]], start: int | None, end: int
    ) -> float:
        """Joules of the counter steps that straddle the window's start (when given) and end, prorated by time.

        Samples are seconds or minutes apart: a window from 10:02 with samples at 10:00 and 10:05 used 3/5 of that
        step, which summing the steps inside the window left out (an hour of 5-minute samples lost 8 %).
        """
        spacing = max(1, (inside[-1][0] - inside[0][0]) // max(1, len(inside) - 1))
        joules = 0.0
        if start is not None:
            before = self._query(
                "SELECT t_ms, energy_mj FROM sample WHERE node_id = ? AND gpu = ? AND t_ms < ?"
                " AND energy_mj IS NOT NULL ORDER BY t_ms DESC LIMIT 1",
                (node_id, gpu, start),
            )
            joules += _prorated(before[0] if before else None, inside[0], start, inside[0][0], spacing)
        after = self._query(
            "SELECT t_ms, energy_mj FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ?"
            " AND energy_mj IS NOT NULL ORDER BY t_ms LIMIT 1",
            (node_id, gpu, end),
        )
        joules += _prorated(inside[-1], after[0] if after else None, inside[-1][0], end, spacing)
        return joules / 1000

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
                (node_id, to_ms(since), to_ms(until)),
                "export",
            )
            for gpu, t_ms, *values in found:
                item: dict[str, Any] = {"time": t_ms / 1000, "node": name, "gpu": gpu}
                for metric, value in zip(METRICS.values(), values[:-1], strict=True):
                    item[metric.name] = rows.decode(value, metric.scale)
                item["throttle_reasons"] = rows.reasons_from_mask(values[-1], bit_names)
                yield item


def _step(before: int, after: int) -> int:
    """A counter's increase between two readings (millijoules); a reset (reboot) counts from zero."""
    return after - before if after >= before else after


def _prorated(a: tuple[int, int] | None, b: tuple[int, int] | None, lo: int, hi: int, spacing: int) -> float:
    """The share of the counter step a -> b (time, millijoules) that falls in [lo, hi); 0 across a long silence."""
    if a is None or b is None or b[0] <= a[0] or hi <= lo or b[0] - a[0] > 2 * spacing:
        return 0.0
    return _step(a[1], b[1]) * (hi - lo) / (b[0] - a[0])


def _rollup_joules(minutes: Sequence[tuple[int, float]], start_ms: int, stop_ms: int) -> float:
    """Joules in [start_ms, stop_ms) from 1-minute mean power (minute, milliwatts), each held to the next minute.

    Only minutes with a sample have a row, so counting each as 60 s would bill a GPU sampled every 5 minutes (a cron
    sweep) for one minute in five. Each minute's mean counts until the next minute with data, but never longer
    than the usual spacing of this GPU's minutes (their median gap, at least 60 s): a node switched off for a day,
    or the last minute before the window's end, is not billed at its last power for the whole gap. A minute before
    the window counts for what of it falls inside.
    """
    starts = [t * 60_000 for t, _ in minutes]
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    usual = max(60_000, gaps[len(gaps) // 2] if gaps else 60_000)
    ends = [*starts[1:], max(stop_ms, starts[-1])]
    spans = [
        (max(begin, start_ms), min(begin + min(end - begin, usual), stop_ms))
        for begin, end in zip(starts, ends, strict=True)
    ]
    return sum(max(0, hi - lo) / 1000 * mw / 1000 for (lo, hi), (_, mw) in zip(spans, minutes, strict=True))


def _bucket(found: Sequence[HistoryRow], step: float) -> list[Point]:
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
