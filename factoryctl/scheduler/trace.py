"""Job traces (DESIGN.md format) parsed and checked before any replay, so a bad row is a sentence, not a crash.

`job_id,submit_time_s,duration_s,num_gpus` are required; `num_nodes,gpus_per_node,priority,walltime_s` are optional
and extra columns are ignored. The caller reads the file; this module only sees its lines (no IO in the core).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass

from factoryctl.errors import UsageError

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus")


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One trace row. `walltime_s` is the duration when the trace gives none (exact estimates)."""

    job_id: str
    submit_s: float
    duration_s: float
    num_gpus: int
    gpus_per_node: int | None = None
    priority: int = 0
    walltime_s: float = 0.0

    @property
    def runtime_s(self) -> float:
        """How long the job really runs: its duration, cut at its walltime (the executor kills it there)."""
        return min(self.duration_s, self.walltime_s) if self.walltime_s > 0 else self.duration_s


def _number(row: dict[str, str], column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {column} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {column} is not a finite number: {text!r}")
    return value


def _optional(row: dict[str, str], column: str, where: str) -> float | None:
    if not (row.get(column) or "").strip():
        return None
    return _number(row, column, where)


def _count(value: float, column: str, where: str) -> int:
    if value != int(value) or value < 1:
        raise UsageError(f"{where}: {column} must be a whole number of at least 1, not {value:g}")
    return int(value)


def parse_row(row: dict[str, str], where: str) -> TraceJob:
    """Check and convert one row; `where` (file:line) prefixes every error."""
    job_id = (row.get("job_id") or "").strip()
    if not job_id:
        raise UsageError(f"{where}: job_id is empty")
    submit = _number(row, "submit_time_s", where)
    duration = _number(row, "duration_s", where)
    if submit < 0 or duration < 0:
        raise UsageError(f"{where}: submit_time_s and duration_s must not be negative")
    num_gpus = _count(_number(row, "num_gpus", where), "num_gpus", where)
    per_node = _optional(row, "gpus_per_node", where)
    nodes = _optional(row, "num_nodes", where)
    gpus_per_node = None if per_node is None else _count(per_node, "gpus_per_node", where)
    if gpus_per_node is None and nodes is not None and _count(nodes, "num_nodes", where) > 1:
        gpus_per_node = num_gpus // int(nodes)
    if gpus_per_node is not None and (num_gpus % gpus_per_node or gpus_per_node > num_gpus):
        raise UsageError(f"{where}: num_gpus {num_gpus} does not split into {gpus_per_node} GPUs per node")
    walltime = _optional(row, "walltime_s", where)
    if walltime is not None and walltime <= 0:
        raise UsageError(f"{where}: walltime_s must be positive")
    priority = _optional(row, "priority", where) or 0.0
    return TraceJob(job_id, submit, duration, num_gpus, gpus_per_node, int(priority), walltime or duration)


def parse_trace(lines: Iterable[str], source: str = "trace") -> list[TraceJob]:
    """Parse a whole trace; missing columns, bad values, duplicate ids and an empty trace are usage errors."""
    reader = csv.DictReader(lines)
    header = [name.strip() for name in reader.fieldnames or ()]
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise UsageError(
            f"{source}: missing column(s) {', '.join(missing)}",
            hint="a trace needs job_id,submit_time_s,duration_s,num_gpus (see docs/scheduler.md)",
        )
    reader.fieldnames = header
    jobs: list[TraceJob] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        job = parse_row(row, f"{source}:{line}")
        if job.job_id in seen:
            raise UsageError(f"{source}:{line}: job_id {job.job_id!r} appears twice")
        seen.add(job.job_id)
        jobs.append(job)
    if not jobs:
        raise UsageError(f"{source}: the trace has no jobs")
    return jobs
