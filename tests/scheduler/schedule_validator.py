"""An independent checker for `sched simulate --schedule-out` files.

It shares no code with the simulator: it reads the trace CSV and the schedule CSV as plain text and checks the
rules every schedule must keep, so a bug in the simulator cannot hide behind the same bug in its own self-check.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict


def read_trace(text: str) -> dict[str, tuple[float, int, float]]:
    """job_id -> (submit, num_gpus, duration)."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        out[row["job_id"]] = (float(row["submit_time_s"]), int(row["num_gpus"]), float(row["duration_s"]))
    return out


def validate(schedule_text: str, trace_text: str, nodes: int, gpus_per_node: int) -> list[str]:
    """Problems found (empty when the schedule is valid)."""
    trace = read_trace(trace_text)
    width = max(3, len(str(nodes)))
    capacity = {f"n{i + 1:0{width}d}": gpus_per_node for i in range(nodes)}
    problems: list[str] = []
    rows = list(csv.DictReader(io.StringIO(schedule_text)))
    seen: dict[str, set[str]] = defaultdict(set)
    per_policy_usage: dict[str, list[tuple[float, int, str, int]]] = defaultdict(list)
    for row in rows:
        policy, job_id = row["policy"], row["job_id"]
        if job_id in seen[policy]:
            problems.append(f"{policy}/{job_id}: listed twice")
        seen[policy].add(job_id)
        submit, num_gpus, duration = trace[job_id]
        start, end = float(row["start_s"]), float(row["end_s"])
        if float(row["submit_s"]) != submit:
            problems.append(f"{policy}/{job_id}: submit_s differs from the trace")
        if start < submit:
            problems.append(f"{policy}/{job_id}: starts before submission")
        if not math.isclose(end - start, duration, abs_tol=1e-6):
            problems.append(f"{policy}/{job_id}: runs {end - start}s, trace says {duration}s")
        parts = [p.split(":") for p in row["allocation"].split()]
        total = 0
        names = set()
        for name, gpus in parts:
            if name not in capacity:
                problems.append(f"{policy}/{job_id}: unknown node {name}")
            names.add(name)
            total += int(gpus)
            per_policy_usage[policy].append((start, 1, name, int(gpus)))
            per_policy_usage[policy].append((end, 0, name, -int(gpus)))
        if total != num_gpus or len(names) != len(parts):
            problems.append(f"{policy}/{job_id}: allocation {row['allocation']!r} is not the whole gang")
    for policy, events in per_policy_usage.items():
        used: dict[str, int] = defaultdict(int)
        for when, _, name, delta in sorted(events):
            used[name] += delta
            if used[name] > capacity.get(name, 0):
                problems.append(f"{policy}: {name} over-committed at {when}")
                break
    return problems
