"""The numbers `sched simulate` reports per policy, defined once so every comparison uses the same arithmetic.

Percentiles interpolate linearly between order statistics (numpy's default), JCT is submit to end, queueing delay
is submit to start, and "big" jobs are those above 8 GPUs (more than one usual node). A preempted job has several
run segments: its JCT runs from submit to its final end and its queueing delay is all the time it spent not
running (submit to first start plus every wait after a preemption).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Sequence
from typing import Any

from factoryctl.scheduler.schedule_records import JobRecord, ScheduleRecords, as_columns
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


def job_delays(records: Sequence[JobRecord]) -> list[tuple[int, float, float]]:
    """Per job, in the order of first start: (GPUs, completion time, queueing delay) over all its run segments."""
    return list(zip(*delay_columns(as_columns(records)), strict=True))


def delay_columns(records: ScheduleRecords) -> tuple[array[int], array[float], array[float]]:
    """`job_delays` as three columns (GPUs, completion times, queueing delays): no tuple per job on a big trace.

    Only the jobs `records.segmented` names (preempted ones) are gathered into their run segments.
    """
    ids, submits, starts, ends = records.job_ids, records.submit_times, records.start_times, records.end_times
    gpus, jcts, queues = array("i", records.gpu_counts), array("d"), array("d")
    parts: dict[str, list[JobRecord]] = {}
    slots: dict[str, int] = {}
    keep = array("b", [1]) * len(ids)  # 0: a later segment of a job already counted
    for i, job_id in enumerate(ids):
        if job_id in records.segmented:
            if job_id in parts:
                parts[job_id].append(records[i])
                keep[i] = 0
                continue
            parts[job_id], slots[job_id] = [records[i]], len(jcts)
        jcts.append(ends[i] - submits[i])
        queues.append(starts[i] - submits[i])
    gpus = array("i", itertools.compress(gpus, keep))
    for job_id, segments in parts.items():
        segments.sort(key=lambda r: r.start_s)
        first, slot = segments[0], slots[job_id]
        waited = first.queue_s + sum(after.start_s - before.end_s for before, after in itertools.pairwise(segments))
        gpus[slot], jcts[slot], queues[slot] = first.num_gpus, segments[-1].end_s - first.submit_s, waited
    return gpus, jcts, queues


def summarize(result: SimulationResult, preemption: bool = False) -> dict[str, Any]:
    """One `sched simulate` JSON item for a policy; with `preemption`, also `preemptions` and `preempted_gpu_s`."""
    records = as_columns(result.records)
    gpus, jcts, queues = delay_columns(records)
    out: dict[str, Any] = {"policy": result.policy}
    out.update(delay_stats(jcts, queues))
    big = [gpu > BIG_JOB_GPUS for gpu in gpus]
    out.update(
        delay_stats(array("d", itertools.compress(jcts, big)), array("d", itertools.compress(queues, big)), "big_")
    )
    if records:
        starts, ends = records.start_times, records.end_times
        first = min(records.submit_times)
        makespan = max(ends) - first
        busy = sum(gpu * (end - start) for gpu, start, end in zip(records.gpu_counts, starts, ends, strict=True))
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
