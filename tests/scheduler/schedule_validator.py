"""An independent checker for `sched simulate --schedule-out` files.

It shares no code with the simulator: it reads the trace CSV and the schedule CSV as plain text and checks the
rules every schedule must keep, so a bug in the simulator cannot hide behind the same bug in its own self-check.
A preempted job has one row per run segment: its segments must not overlap and must add up to its run time (its
duration, cut at its walltime when the trace gives one), the grace period counting as work (it checkpointed then).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import defaultdict


def read_trace(text: str) -> dict[str, tuple[float, int, float]]:
    """job_id -> (submit, num_gpus, run time)."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        duration = float(row["duration_s"])
        walltime = float(row.get("walltime_s") or 0)
        run = min(duration, walltime) if walltime > 0 else duration
        out[row["job_id"]] = (float(row["submit_time_s"]), int(row["num_gpus"]), run)
    return out


def _row_problems(
    row: dict[str, str], trace: dict[str, tuple[float, int, float]], capacity: dict[str, int]
) -> list[str]:
    """What is wrong with one segment on its own: submit time, start, the gang and the nodes it names."""
    policy, job_id = row["policy"], row["job_id"]
    submit, num_gpus, _ = trace[job_id]
    problems = []
    if float(row["submit_s"]) != submit:
        problems.append(f"{policy}/{job_id}: submit_s differs from the trace")
    if float(row["start_s"]) < submit:
        problems.append(f"{policy}/{job_id}: starts before submission")
    if float(row["end_s"]) < float(row["start_s"]):
        problems.append(f"{policy}/{job_id}: ends before it starts")
    parts = [p.split(":") for p in row["allocation"].split()]
    names = {name for name, _ in parts}
    problems += [f"{policy}/{job_id}: unknown node {name}" for name in sorted(names - capacity.keys())]
    if sum(int(gpus) for _, gpus in parts) != num_gpus or len(names) != len(parts):
        problems.append(f"{policy}/{job_id}: allocation {row['allocation']!r} is not the whole gang")
    return problems


def _segment_problems(key: tuple[str, str], spans: list[tuple[float, float]], run: float) -> list[str]:
    """A job's segments never overlap and add up to its run time."""
    spans.sort()
    problems = []
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            problems.append(f"{key[0]}/{key[1]}: runs twice at once at {start}")
    total = sum(end - start for start, end in spans)
    if abs(total - run) > 1e-6 + 1e-12 * spans[-1][1]:
        problems.append(f"{key[0]}/{key[1]}: runs {total}s in all, trace says {run}s")
    return problems


def validate(schedule_text: str, trace_text: str, nodes: int, gpus_per_node: int) -> list[str]:
    """Problems found (empty when the schedule is valid)."""
    trace = read_trace(trace_text)
    width = max(3, len(str(nodes)))
    capacity = {f"n{i + 1:0{width}d}": gpus_per_node for i in range(nodes)}
    problems: list[str] = []
    spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    per_policy_usage: dict[str, list[tuple[float, int, str, int]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(schedule_text)):
        policy, job_id = row["policy"], row["job_id"]
        problems += _row_problems(row, trace, capacity)
        start, end = float(row["start_s"]), float(row["end_s"])
        spans[(policy, job_id)].append((start, end))
        for part in row["allocation"].split():
            name, gpus = part.split(":")
            per_policy_usage[policy] += [(start, 1, name, int(gpus)), (end, 0, name, -int(gpus))]
    for key, job_spans in spans.items():
        problems += _segment_problems(key, job_spans, trace[key[1]][2])
    for policy, events in per_policy_usage.items():
        used: dict[str, int] = defaultdict(int)
        for when, _, name, delta in sorted(events):
            used[name] += delta
            if used[name] > capacity.get(name, 0):
                problems.append(f"{policy}: {name} over-committed at {when}")
                break
    return problems
