"""Jobs as every layer sees them: what was asked (`JobSpec`), where it runs (`Placement`), and its record (`Job`).

The scheduler's entry point (`scheduler.decide.schedule`, called from Python and the tests today) decides on these;
the trace replay behind `sched simulate` and `sched explain` uses only `SchedNode` and the job states; the job
executor (`factoryctl.jobs`) launches ranks from them, the store keeps them (`model.job_records` is their lossless
stored form) and the `jobs` commands print them. So they are frozen, standard-library only and carry their own JSON
form.
`SchedNode` is the scheduler's narrow view of an inventory node: only what placement needs, nothing about SSH.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from factoryctl.errors import UsageError
from factoryctl.model.timefmt import iso_utc as iso_utc  # re-exported: reasons and job JSON use it

#: Walltime assumed for a job submitted without one (`scheduler.default_walltime`): 24 hours.
DEFAULT_WALLTIME_S = 24 * 3600.0


class JobState(str, Enum):
    """A job's lifecycle. PENDING and DEFERRED wait in the queue; STARTING and RUNNING hold GPUs."""

    PENDING = "PENDING"
    DEFERRED = "DEFERRED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def waiting(self) -> bool:
        """True while the job is queued (it holds no GPU)."""
        return self in (JobState.PENDING, JobState.DEFERRED)

    @property
    def active(self) -> bool:
        """True while the job holds GPUs."""
        return self in (JobState.STARTING, JobState.RUNNING)

    @property
    def terminal(self) -> bool:
        """True once the job is over and will never change again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class GpuAllocation:
    """GPUs granted to a job on one node (one `allocation` entry: `{node, gpus}`)."""

    node: str
    gpus: int

    def as_json(self) -> dict[str, Any]:
        """The `{node, gpus}` JSON object."""
        return {"node": self.node, "gpus": self.gpus}


@dataclass(frozen=True)
class Placement:
    """Where a whole gang runs: one entry per node, in rank order (rank 0 first)."""

    allocation: tuple[GpuAllocation, ...]

    @property
    def num_gpus(self) -> int:
        """GPUs over all nodes."""
        return sum(a.gpus for a in self.allocation)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Node names in rank order."""
        return tuple(a.node for a in self.allocation)

    def render(self) -> str:
        """The compact form used in CSV and tables: `n017:8 n018:8`."""
        return " ".join(f"{a.node}:{a.gpus}" for a in self.allocation)


@dataclass(frozen=True)
class Rank:
    """One launcher process of a job: one per allocated node (`RANK` = `NODE_RANK`).

    `gpus` are the GPU indexes it was given on its node (its `CUDA_VISIBLE_DEVICES`); `started_at` and `ended_at`
    are unix times as its node's agent reported them (None: not started, or not known to have ended).
    """

    rank: int
    node: str
    pid: int | None = None
    exit_code: int | None = None
    gpus: tuple[int, ...] = ()
    started_at: float | None = None
    ended_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The `{rank, node, pid, exit_code, gpus}` JSON object."""
        return {
            "rank": self.rank,
            "node": self.node,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "gpus": list(self.gpus),
        }


@dataclass(frozen=True)
class JobSpec:
    """What a user asked for. Only `num_gpus` is required; everything else has a sensible default.

    Attributes:
        num_gpus: GPUs over the whole gang.
        gpus_per_node: split the gang as `num_gpus / gpus_per_node` nodes (e.g. 12 GPUs as 2 x 6); by default a job
            of up to one node's GPUs packs onto one node and a larger one takes whole nodes.
        nodes: allowed node names (empty: any node).
        labels: node labels the job requires, every one must match.
        priority: larger runs first; each unit is worth `SchedulerConfig.priority_unit_s` of waiting.
        walltime_s: upper bound of the run time; the scheduler plans reservations with it and the executor kills
            the job past it. None means `DEFAULT_WALLTIME_S`.
        deferrable: the job may wait for cheap electricity.
        max_price: the highest grid price (per MWh) a deferrable job runs at before its deadline forces it.
        deadline: unix time by which a deferrable job must have finished.
        cwd: the directory the ranks start in ("" = the node user's home).
        env: extra environment of every rank (`--env K=V`), in the order given.
    """

    num_gpus: int
    name: str = ""
    user: str = ""
    command: tuple[str, ...] = ()
    gpus_per_node: int | None = None
    nodes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    priority: int = 0
    walltime_s: float | None = None
    deferrable: bool = False
    max_price: float | None = None
    deadline: float | None = None
    cwd: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Reject shapes no scheduler could honour, so bad specs fail at submit time."""
        if self.num_gpus < 1:
            raise UsageError(f"num_gpus must be at least 1, not {self.num_gpus}")
        if self.gpus_per_node is not None:
            if self.gpus_per_node < 1:
                raise UsageError(f"gpus_per_node must be at least 1, not {self.gpus_per_node}")
            if self.num_gpus % self.gpus_per_node:
                raise UsageError(f"num_gpus {self.num_gpus} is not a multiple of gpus_per_node {self.gpus_per_node}")
        if self.walltime_s is not None and not self.walltime_s > 0:
            raise UsageError(f"walltime_s must be positive, not {self.walltime_s}")

    @property
    def walltime(self) -> float:
        """The walltime the scheduler plans with (the default when none was given)."""
        return DEFAULT_WALLTIME_S if self.walltime_s is None else self.walltime_s


@dataclass(frozen=True)
class StopRequest:
    """A running job being stopped (preempted) for a higher-priority one: the executor records it, `schedule` reads it.

    When the executor carries out a `PreemptDecision` it signals the job to checkpoint at `requested_at` and stops it
    `grace_s` (the decision's grace) later; meanwhile the job keeps its GPUs and stays RUNNING with this request on
    its record. One value rather than separate fields, so a record never has a claimer without a time; the grace it
    was given travels with it, so a change of the configured grace does not move a stop already under way.

    Attributes:
        for_job: the id of the job it is stopped for (the one the scheduler keeps a reservation for).
        requested_at: unix time the executor asked it to checkpoint.
        grace_s: seconds it has to checkpoint before it is stopped.
    """

    for_job: str
    requested_at: float
    grace_s: float

    def __post_init__(self) -> None:
        """A negative grace would stop the job before it was asked to checkpoint."""
        if not self.grace_s >= 0:
            raise UsageError(f"grace_s must not be negative, not {self.grace_s}")

    @property
    def stops_at(self) -> float:
        """When the executor stops the job and its GPUs are free (unless it ends on its own before)."""
        return self.requested_at + self.grace_s

    def as_json(self) -> dict[str, Any]:
        """The `{for_job, requested_at, grace_s, stops_at}` JSON object (times in ISO 8601 UTC)."""
        return {
            "for_job": self.for_job,
            "requested_at": iso_utc(self.requested_at),
            "grace_s": self.grace_s,
            "stops_at": iso_utc(self.stops_at),
        }


@dataclass(frozen=True)
class Job:
    """A job's record: its spec, where it is in its lifecycle, and why (`reason` is a sentence for people).

    `stopping` is set, on a running job, while the executor stops it for a higher-priority job (`StopRequest`).
    """

    id: str
    spec: JobSpec
    submitted_at: float
    state: JobState = JobState.PENDING
    reason: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    allocation: tuple[GpuAllocation, ...] = ()
    ranks: tuple[Rank, ...] = ()
    restarts: int = 0
    energy_kwh: float | None = None
    cost: float | None = None
    stopping: StopRequest | None = None
    #: The rendezvous port of its current launch (MASTER_PORT), unique among the launches on its rank 0's node.
    master_port: int | None = None
    #: Its last run before it was requeued (a failure, a preemption): (started_at, ranks), so that `jobs logs` still
    #: reads what that run printed (kept on its nodes) while the job waits to start again.
    last_run: tuple[float, tuple[Rank, ...]] | None = None

    @property
    def name(self) -> str:
        """The job's name (its id when it was given none)."""
        return self.spec.name or self.id

    @property
    def user(self) -> str:
        """The submitting user."""
        return self.spec.user

    @property
    def num_gpus(self) -> int:
        """GPUs over the whole gang."""
        return self.spec.num_gpus

    @property
    def placement(self) -> Placement:
        """The allocation as a `Placement`."""
        return Placement(self.allocation)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes it holds or held, rank 0 first (its allocation, else its ranks'); none before it was placed."""
        return tuple(a.node for a in self.allocation) or tuple(r.node for r in self.ranks)

    def elapsed(self, now: float) -> float | None:
        """TIME as `jobs list` shows it: how long a waiting job has queued, an active one run, an ended one ran.

        None for a job that ended without ever starting (cancelled while it waited).
        """
        if self.state.waiting:
            return now - self.submitted_at
        if self.started_at is None:
            return None
        return (self.ended_at if self.state.terminal and self.ended_at is not None else now) - self.started_at

    def requeued(self, reason: str, restarts: int) -> Job:
        """Back in the queue: no GPUs, no ranks, waiting to be placed again; the run it had kept in `last_run`."""
        ran = self.ranks and self.started_at is not None
        return self.evolve(
            state=JobState.PENDING,
            reason=reason,
            restarts=restarts,
            allocation=(),
            ranks=(),
            started_at=None,
            ended_at=None,
            stopping=None,
            last_run=(self.started_at, self.ranks) if ran else self.last_run,
        )

    def last_launch(self) -> Job | None:
        """The job as it was in its last run (its ranks and start: `rank_env.launch_id`), when it was requeued."""
        if self.last_run is None:
            return None
        started_at, ranks = self.last_run
        return self.evolve(started_at=started_at, ranks=ranks, last_run=None)

    def evolve(self, **changes: Any) -> Job:  # noqa: ANN401 - `replace`'s field values, each of its own field's type
        """A copy with some fields changed (records are immutable)."""
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """The job's JSON object (DESIGN.md "Job fields", plus what was asked to run and how); a test fixes its keys.

        `walltime_s` is the spec's own (null: the scheduler's default was assumed).
        """
        spec = self.spec
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "state": self.state.value,
            "reason": self.reason,
            "num_gpus": self.num_gpus,
            "gpus_per_node": spec.gpus_per_node,
            "priority": spec.priority,
            "walltime_s": spec.walltime_s,
            "command": list(spec.command),
            "cwd": spec.cwd,
            "allocation": [a.as_json() for a in self.allocation],
            "ranks": [r.as_json() for r in self.ranks],
            "restarts": self.restarts,
            "submitted_at": iso_utc(self.submitted_at),
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "stopping": self.stopping.as_json() if self.stopping is not None else None,
            "energy_kwh": self.energy_kwh,
            "cost": self.cost,
        }


@dataclass(frozen=True)
class SchedNode:
    """A node as the scheduler sees it: capacity, topology and whether it may receive work."""

    name: str
    gpus: int
    rack: str | None = None
    switch: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    state: str = "up"  # up | degraded | down (reachability, as `state` in docs/cli.md, Node fields)
    drained: bool = False
    healthy: bool = True
    heard: bool = True  # False: the store has never heard from it (offered as down until its first sample)

    @property
    def schedulable(self) -> bool:
        """Down, drained and unhealthy nodes receive nothing."""
        return self.state != "down" and not self.drained and self.healthy and self.gpus > 0

    @property
    def topology_group(self) -> str:
        """The narrowest known network domain: the switch, else the rack, else one flat group."""
        return self.switch or self.rack or ""
