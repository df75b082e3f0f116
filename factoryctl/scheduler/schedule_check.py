"""The rules every replayed schedule must keep, checked from its records alone after each replay.

A failure here is a simulator bug, never a user error (`simulate` raises it as one). The check reads the records'
columns (`ScheduleRecords`) and the trace's, and keeps only the GPUs in use per node and the runs in progress while
it sweeps the schedule in start order, so it costs a few bytes a job on a trace of millions rather than a list of
every start and end event.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from operator import attrgetter

from factoryctl.scheduler.schedule_records import JobRecord, ScheduleRecords, as_columns
from factoryctl.scheduler.trace import TraceJob
from factoryctl.scheduler.tracejobs import TraceJobs


def check_schedule(records: Sequence[JobRecord], capacity: dict[str, int], trace: Sequence[TraceJob]) -> list[str]:
    """Every rule a schedule must keep, checked from the records alone; returns the problems found.

    A preempted job has several records (run segments): they must not overlap and must add up to its run time.
    """
    columns, jobs = as_columns(records), trace if isinstance(trace, TraceJobs) else TraceJobs(trace)
    index = {job_id: i for i, job_id in enumerate(jobs.job_ids)}
    submits, gpus = jobs.submit_times, jobs.gpu_counts
    times = columns.submit_times, columns.start_times
    problems: list[str] = []
    runs = bytearray(len(jobs))  # records seen per trace job, up to 2: the jobs with several are checked as such
    segmented: dict[str, list[JobRecord]] = {}
    for i, job_id in enumerate(columns.job_ids):
        at = index.get(job_id)
        if at is None:
            problems.append(f"{job_id} is not in the trace")
            continue
        runs[at] = min(runs[at] + 1, 2)
        if runs[at] == 2:
            segmented[job_id] = []
        if times[1][i] < times[0][i] or times[0][i] != submits[at]:
            problems.append(f"{job_id} starts before it was submitted")
        held = list(columns.held(i))
        if sum(count for _, count in held) != gpus[at]:
            problems.append(f"{job_id} got a partial gang: {columns[i].allocation_text()}")
        if len({node for node, _ in held}) != len(held):
            problems.append(f"{job_id} lists a node twice")
    over = _over_commit(columns, capacity)
    if over is not None:
        problems.append(over)
    for record in columns if segmented else ():
        if record.job_id in segmented:
            segmented[record.job_id].append(record)
    problems.extend(_segment_problems(segmented, {job_id: jobs[index[job_id]] for job_id in segmented}))
    return problems


def _over_commit(records: ScheduleRecords, capacity: dict[str, int]) -> str | None:
    """The first node found holding more GPUs than it has, said with the time; None when none ever does.

    Runs are swept in start order (records come in it: no sort), ends at or before a start coming first, as a
    sorted list of every start and end event would have them.
    """
    starts, ends, names = records.start_times, records.end_times, records.names
    ordered = all(starts[i] <= starts[i + 1] for i in range(len(starts) - 1))
    order = range(len(starts)) if ordered else sorted(range(len(starts)), key=starts.__getitem__)
    most = [capacity.get(name, 0) for name in names]
    used = [0] * len(names)
    running: list[tuple[float, int]] = []  # (end, record): a heap
    for i in order:
        while running and running[0][0] <= starts[i]:
            for node, gpus in records.held(heapq.heappop(running)[1]):
                used[node] -= gpus
        for node, gpus in records.held(i):
            used[node] += gpus
            if used[node] > most[node]:
                return f"{names[node]} over-committed at t={starts[i]:g}s ({used[node]} GPUs used)"
        heapq.heappush(running, (ends[i], i))
    return None


def _segment_problems(segments: dict[str, list[JobRecord]], trace: dict[str, TraceJob]) -> list[str]:
    """A preempted job's run segments follow one another and sum to its run time (it loses no work).

    The sum is compared within a few units in the last place of the largest time (end = start + duration rounds).
    """
    problems: list[str] = []
    for job_id, parts in segments.items():
        parts.sort(key=attrgetter("start_s"))
        for before, after in itertools.pairwise(parts):
            if after.start_s < before.end_s:
                problems.append(f"{job_id} runs twice at once at t={after.start_s:g}s")
        ran = sum(part.end_s - part.start_s for part in parts)
        runtime = trace[job_id].runtime_s
        if abs(ran - runtime) > 1e-12 * parts[-1].end_s + 1e-9:
            problems.append(f"{job_id} ran {ran:g}s in all but its run time is {runtime:g}s")
    return problems
