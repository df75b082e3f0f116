"""The numbers `sched simulate` reports per policy, defined once so every comparison uses the same arithmetic.

Percentiles interpolate linearly between order statistics (numpy's default), JCT is submit to end, queueing delay
is submit to start, and "big" jobs are those above 8 GPUs (more than one usual node). A preempted job has several
run segments: its JCT runs from submit to its final end and its queueing delay is all the time it spent not
running (submit to first start plus every wait after a preemption).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from factoryctl.scheduler.simulate import JobRecord, SimulationResult

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


def job_delays(records: Sequence[JobRecord]) -> list[tuple[int, float, float]]:
    """Per job, in the order of first start: (GPUs, completion time, queueing delay) over all its run segments."""
    segments: dict[str, list[JobRecord]] = {}
    for record in records:
        segments.setdefault(record.job_id, []).append(record)
    out: list[tuple[int, float, float]] = []
    for parts in segments.values():
        first = parts[0]
        if len(parts) == 1:
            out.append((first.num_gpus, first.jct_s, first.queue_s))
            continue
        parts.sort(key=lambda r: r.start_s)
        first = parts[0]
        waited = first.queue_s + sum(after.start_s - before.end_s for before, after in itertools.pairwise(parts))
        out.append((first.num_gpus, parts[-1].end_s - first.submit_s, waited))
    return out


def summarize(result: SimulationResult, preemption: bool = False) -> dict[str, Any]:
    """One `sched simulate` JSON item for a policy; with `preemption`, also `preemptions` and `preempted_gpu_s`."""
    records = result.records
    jobs = job_delays(records)
    out: dict[str, Any] = {"policy": result.policy}
    out.update(delay_stats([jct for _, jct, _ in jobs], [queue for _, _, queue in jobs]))
    big = [job for job in jobs if job[0] > BIG_JOB_GPUS]
    out.update(delay_stats([jct for _, jct, _ in big], [queue for _, _, queue in big], prefix="big_"))
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
    if preemption:
        out["preemptions"] = result.preemptions
        out["preempted_gpu_s"] = result.preempted_gpu_s
    return out
