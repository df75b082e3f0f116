"""The numbers `sched simulate` reports per policy, defined once so every comparison uses the same arithmetic.

Percentiles interpolate linearly between order statistics (numpy's default), JCT is submit to end, queueing delay
is submit to start, and "big" jobs are those above 8 GPUs (more than one usual node).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factoryctl.scheduler.simulate import SimulationResult

BIG_JOB_GPUS = 8


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct`-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def delay_stats(jcts: Sequence[float], queues: Sequence[float], prefix: str = "") -> dict[str, Any]:
    """`jobs, avg_jct_s, avg_queue_s, p50_queue_s, p99_queue_s, max_queue_s`, keys prefixed with `prefix`."""
    return {
        f"{prefix}jobs": len(jcts),
        f"{prefix}avg_jct_s": _mean(jcts),
        f"{prefix}avg_queue_s": _mean(queues),
        f"{prefix}p50_queue_s": percentile(queues, 50),
        f"{prefix}p99_queue_s": percentile(queues, 99),
        f"{prefix}max_queue_s": max(queues) if queues else None,
    }


def summarize(result: SimulationResult) -> dict[str, Any]:
    """One `sched simulate` JSON item for a policy."""
    records = result.records
    out: dict[str, Any] = {"policy": result.policy}
    out.update(delay_stats([r.jct_s for r in records], [r.queue_s for r in records]))
    big = [r for r in records if r.num_gpus > BIG_JOB_GPUS]
    out.update(delay_stats([r.jct_s for r in big], [r.queue_s for r in big], prefix="big_"))
    if records:
        first = min(r.submit_s for r in records)
        makespan = max(r.end_s for r in records) - first
        busy = sum(r.num_gpus * (r.end_s - r.start_s) for r in records)
        utilization = busy / (result.total_gpus * makespan) if makespan > 0 and result.total_gpus else 0.0
    else:
        makespan, utilization = 0.0, 0.0
    out["gpu_utilization"] = utilization
    out["makespan_s"] = makespan
    passes_ms = [t * 1000.0 for t in result.pass_times_s]
    out["passes"] = len(passes_ms)
    out["pass_time_p50_ms"] = percentile(passes_ms, 50)
    out["pass_time_p99_ms"] = percentile(passes_ms, 99)
    out["rejected_jobs"] = len(result.rejected)
    return out
