"""A job's stored form: `job_record` and `job_from_record`, a lossless JSON-able round trip of every field.

`Job.as_json` is for people and scripts (ISO times, derived names, the documented keys); the store needs the record
back exactly as it was written, spec included, so it keeps this one instead: times as unix floats, tuples as lists,
nothing derived. Pure and standard-library only, so any layer may read a stored job. `json.dumps` with its default
`ensure_ascii` keeps every string (an argv byte decoded with `surrogateescape` too) as it was.
A key missing from a record reads as the field's default, so a record written before a field existed still loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank, StopRequest

#: The record's layout; a later change that old records cannot be read by bumps it.
RECORD_VERSION = 1


def job_record(job: Job) -> dict[str, Any]:
    """Every field of `job` as JSON-able values (the inverse of `job_from_record`)."""
    stopping = job.stopping
    return {
        "v": RECORD_VERSION,
        "id": job.id,
        "spec": spec_record(job.spec),
        "submitted_at": job.submitted_at,
        "state": job.state.value,
        "reason": job.reason,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "allocation": [[a.node, a.gpus] for a in job.allocation],
        "ranks": [_rank_record(r) for r in job.ranks],
        "restarts": job.restarts,
        "energy_kwh": job.energy_kwh,
        "cost": job.cost,
        "stopping": None if stopping is None else [stopping.for_job, stopping.requested_at, stopping.grace_s],
        "master_port": job.master_port,
        "last_run": None if job.last_run is None else [job.last_run[0], [_rank_record(r) for r in job.last_run[1]]],
    }


def job_from_record(record: Mapping[str, Any]) -> Job:
    """The `Job` that `job_record` wrote (a `UsageError` from the spec's checks if the record breaks them)."""
    stopping = record.get("stopping")
    return Job(
        id=str(record["id"]),
        spec=spec_from_record(record["spec"]),
        submitted_at=float(record["submitted_at"]),
        state=JobState(record.get("state", JobState.PENDING.value)),
        reason=str(record.get("reason", "")),
        started_at=_float_or_none(record.get("started_at")),
        ended_at=_float_or_none(record.get("ended_at")),
        allocation=tuple(GpuAllocation(str(node), int(gpus)) for node, gpus in record.get("allocation", ())),
        ranks=tuple(_rank_from_record(r) for r in record.get("ranks", ())),
        restarts=int(record.get("restarts", 0)),
        energy_kwh=_float_or_none(record.get("energy_kwh")),
        cost=_float_or_none(record.get("cost")),
        stopping=None if stopping is None else StopRequest(str(stopping[0]), float(stopping[1]), float(stopping[2])),
        master_port=_int_or_none(record.get("master_port")),
        last_run=_last_run(record.get("last_run")),
    )


def _last_run(value: Any) -> tuple[float, tuple[Rank, ...]] | None:  # noqa: ANN401 - a JSON value
    """The stored (started_at, ranks) of a requeued job's last run; None when none."""
    if not value:
        return None
    return float(value[0]), tuple(_rank_from_record(r) for r in value[1])


def spec_record(spec: JobSpec) -> dict[str, Any]:
    """Every field of `spec` as JSON-able values."""
    return {
        "num_gpus": spec.num_gpus,
        "name": spec.name,
        "user": spec.user,
        "command": list(spec.command),
        "gpus_per_node": spec.gpus_per_node,
        "nodes": list(spec.nodes),
        "labels": [[key, value] for key, value in spec.labels],
        "priority": spec.priority,
        "walltime_s": spec.walltime_s,
        "deferrable": spec.deferrable,
        "max_price": spec.max_price,
        "deadline": spec.deadline,
        "cwd": spec.cwd,
        "env": [[key, value] for key, value in spec.env],
    }


def spec_from_record(record: Mapping[str, Any]) -> JobSpec:
    """The `JobSpec` that `spec_record` wrote."""
    gpus_per_node = record.get("gpus_per_node")
    return JobSpec(
        num_gpus=int(record["num_gpus"]),
        name=str(record.get("name", "")),
        user=str(record.get("user", "")),
        command=tuple(str(arg) for arg in record.get("command", ())),
        gpus_per_node=None if gpus_per_node is None else int(gpus_per_node),
        nodes=tuple(str(node) for node in record.get("nodes", ())),
        labels=tuple((str(key), str(value)) for key, value in record.get("labels", ())),
        priority=int(record.get("priority", 0)),
        walltime_s=_float_or_none(record.get("walltime_s")),
        deferrable=bool(record.get("deferrable", False)),
        max_price=_float_or_none(record.get("max_price")),
        deadline=_float_or_none(record.get("deadline")),
        cwd=str(record.get("cwd", "")),
        env=tuple((str(key), str(value)) for key, value in record.get("env", ())),
    )


def _rank_record(rank: Rank) -> dict[str, Any]:
    return {
        "rank": rank.rank,
        "node": rank.node,
        "pid": rank.pid,
        "exit_code": rank.exit_code,
        "gpus": list(rank.gpus),
        "started_at": rank.started_at,
        "ended_at": rank.ended_at,
    }


def _rank_from_record(record: Mapping[str, Any]) -> Rank:
    pid, exit_code = record.get("pid"), record.get("exit_code")
    return Rank(
        rank=int(record["rank"]),
        node=str(record["node"]),
        pid=None if pid is None else int(pid),
        exit_code=None if exit_code is None else int(exit_code),
        gpus=tuple(int(gpu) for gpu in record.get("gpus", ())),
        started_at=_float_or_none(record.get("started_at")),
        ended_at=_float_or_none(record.get("ended_at")),
    )


def _float_or_none(value: Any) -> float | None:  # noqa: ANN401 - a JSON value: a number or null
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:  # noqa: ANN401 - a JSON value: a number or null
    return None if value is None else int(value)
