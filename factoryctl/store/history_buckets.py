"""`--step` buckets of a GPU's history computed by SQLite (GROUP BY), not by Python over every stored row.

Reading a week of a 256-GPU fleet row by row into Python to fold it into buckets took seconds and gigabytes; the
same sums, counts, minimums and maximums grouped in SQL return one row per bucket. The result is the one
`history._bucket` computes from the rows (the same bucket keys, counts, min and max; the count-weighted mean to
float rounding): the tests compare the two on random data across the rollup/raw seam.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from factoryctl.store import rows

#: (time, mean, min, max, n): one raw point (n = 1) or one rolled-up minute (n: its samples with the metric).
HistoryRow = tuple[float, float | None, float | None, float | None, int]
#: Runs one query with its parameters and returns its rows (`StoreConnection._query`).
Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
#: Per bucket index: [sum of stored value x samples, samples, stored min, stored max].
_Sums = dict[int, list[Any]]


def sql_buckets_fit(step: float) -> bool:
    """Whether SQL can bucket by `step` with the keys Python's `t // step` gives: a whole number of seconds."""
    return step >= 1 and float(step).is_integer()


def sql_bucketed(
    query: Query,
    pair: tuple[int, int],
    spec: rows.Metric,
    rollup_minutes: tuple[int, int] | None,
    raw_ms: tuple[int, int],
    step: float,
    count_column: str,
) -> list[HistoryRow]:
    """(bucket start, mean, min, max, samples) of one GPU, oldest first, from its rollup minutes and raw rows.

    `rollup_minutes`: [first, stop) minute numbers taken from the rollup (None: none); `raw_ms`: [from, end) ms
    taken from raw rows; `count_column`: the rollup's samples of this metric (an SQL expression). A bucket across
    the seam sums both tables' parts.
    """
    step_ms = int(step) * 1000
    col = spec.column
    sums: _Sums = {}
    node_id, gpu = pair
    if rollup_minutes is not None:
        found = query(
            f"SELECT (t_min * 60000) / ? AS b, TOTAL({col}_mean * {count_column}), SUM({count_column}),"
            f" MIN({col}_min), MAX({col}_max) FROM rollup WHERE node_id = ? AND gpu = ? AND t_min >= ?"
            f" AND t_min < ? AND {col}_mean IS NOT NULL AND {col}_min IS NOT NULL AND {col}_max IS NOT NULL"
            " GROUP BY b",
            (step_ms, node_id, gpu, *rollup_minutes),
        )
        _merge(sums, found)
    found = query(
        f"SELECT t_ms / ? AS b, TOTAL({col}), COUNT(*), MIN({col}), MAX({col}) FROM sample"
        f" WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ? AND {col} IS NOT NULL GROUP BY b",
        (step_ms, node_id, gpu, *raw_ms),
    )
    _merge(sums, found)
    return [
        (index * step, float(total) / n / spec.scale, rows.decode(low, spec.scale), rows.decode(high, spec.scale), n)
        for index, (total, n, low, high) in sorted(sums.items())
        if n > 0
    ]


def _merge(sums: _Sums, found: Sequence[tuple[Any, ...]]) -> None:
    """Add grouped rows (bucket, total, samples, min, max) into `sums`: one bucket may come from both tables."""
    for index, total, n, low, high in found:
        acc = sums.get(int(index))
        if acc is None:
            sums[int(index)] = [total, int(n), low, high]
        else:
            acc[0] += total
            acc[1] += int(n)
            acc[2] = min(acc[2], low)
            acc[3] = max(acc[3], high)


def python_bucketed(found: Sequence[HistoryRow], step: float) -> list[HistoryRow]:
    """Aggregate (time, mean, min, max, n) rows into `step`-second buckets (count-weighted mean), oldest first.

    For a step SQL cannot bucket alike (`sql_buckets_fit`), and the reference the SQL buckets are tested against.
    """
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
    return [(t, acc[0] / acc[1], acc[2], acc[3], int(acc[1])) for t, acc in sorted(buckets.items())]
