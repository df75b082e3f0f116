"""Small builders shared by the scheduler tests (clusters, jobs, traces)."""

from __future__ import annotations

from collections.abc import Iterable

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, SchedNode


def nodes(count: int, gpus: int = 8, rack_size: int | None = None, **overrides: object) -> list[SchedNode]:
    return [
        SchedNode(f"n{i}", gpus, rack=(f"r{i // rack_size}" if rack_size else None), **overrides)  # type: ignore[arg-type]
        for i in range(count)
    ]


def pending(job_id: str, num_gpus: int, submitted_at: float = 0.0, **spec: object) -> Job:
    return Job(job_id, JobSpec(num_gpus, **spec), submitted_at)  # type: ignore[arg-type]


def running(job_id: str, alloc: Iterable[tuple[str, int]], started_at: float, walltime_s: float, **spec: object) -> Job:
    allocation = tuple(GpuAllocation(n, g) for n, g in alloc)
    total = sum(a.gpus for a in allocation)
    return Job(
        job_id,
        JobSpec(total, walltime_s=walltime_s, **spec),  # type: ignore[arg-type]
        started_at,
        JobState.RUNNING,
        started_at=started_at,
        allocation=allocation,
    )


def trace_csv(rows: Iterable[tuple[str, float, float, int]], extra_header: str = "", extra: Iterable[str] = ()) -> str:
    header = "job_id,submit_time_s,duration_s,num_gpus" + extra_header
    extras = list(extra)
    lines = [header]
    for i, (job_id, submit, duration, gpus) in enumerate(rows):
        tail = extras[i] if i < len(extras) else ""
        lines.append(f"{job_id},{submit:g},{duration:g},{gpus}{tail}")
    return "\n".join(lines) + "\n"
