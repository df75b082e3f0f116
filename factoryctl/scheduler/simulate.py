"""Replay a job trace through the scheduler's own pass, event by event, and check the schedule it produced.

The simulator exists to compare policies on real traces (and to tune ours) with the exact code that runs the
cluster: it only adds a clock (arrivals and completions) around `core.plan`. It keeps one `FreeMap` across passes
instead of rebuilding the cluster each time, so a 68,000-job trace replays in seconds. With preemption on, the
subclass in `preempt_replay` also stops and requeues jobs; without it, this loop alone runs. Every schedule is
re-checked at the end (no node over-committed, no partial gang, no start before submit, a preempted job's run
segments neither overlapping nor losing work); a failure is a bug.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from factoryctl.errors import FactoryError
from factoryctl.model.jobs import SchedNode
from factoryctl.scheduler.core import (
    Candidate,
    ClaimFor,
    PassOutcome,
    QueueIndex,
    Running,
    Started,
    age_order,
    plan,
    queue_key,
)
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import SchedulerConfig, gang_shape, split_gang
from factoryctl.scheduler.schedule_check import check_schedule
from factoryctl.scheduler.schedule_records import JobRecord, ScheduleRecords
from factoryctl.scheduler.shapequeue import ShapeQueue
from factoryctl.scheduler.starvation import WalltimeUse
from factoryctl.scheduler.trace import TraceJob
from factoryctl.scheduler.tracejobs import arrival_order

#: `JobRecord` lives beside the columns that hold it (`schedule_records`) and is still imported from here.
__all__ = [
    "JobRecord",
    "Progress",
    "Rejected",
    "Replay",
    "SimulationResult",
    "check_schedule",
    "cluster_nodes",
    "drive",
    "new_replay",
    "simulate",
]

_NEVER = float("inf")
#: Told (jobs submitted so far, jobs in the trace) about fifty times in a replay, for a progress line.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Rejected:
    """A trace job the cluster can never run (reported, never left to hang the replay)."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class SimulationResult:
    """One policy's replay: every run segment, the rejected jobs, how long each pass took, and what preemption did.

    Without preemption a job has one record; a preempted job has one per run segment. `preemptions` counts jobs
    stopped at the end of a grace period, and `preempted_gpu_s` the GPU-seconds those grace periods lasted.
    """

    policy: str
    records: Sequence[JobRecord]  # a `ScheduleRecords` from `simulate`
    rejected: tuple[Rejected, ...]
    pass_times_s: Sequence[float]
    total_gpus: int
    preemptions: int = 0
    preempted_gpu_s: float = 0.0


def cluster_nodes(count: int, gpus_per_node: int, rack_size: int | None = None) -> tuple[SchedNode, ...]:
    """A homogeneous cluster `n001..`, optionally split into racks of `rack_size` nodes (`r01`, `r02`, ...)."""
    width = max(3, len(str(count)))
    return tuple(
        SchedNode(
            name=f"n{i + 1:0{width}d}",
            gpus=gpus_per_node,
            rack=f"r{i // rack_size + 1:02d}" if rack_size else None,
        )
        for i in range(count)
    )


class Replay:
    """The event loop's state: waiting queue, running gangs, and the records written so far."""

    #: Whether `by_id` keeps a job once it starts: a replay that requeues stopped jobs needs them again.
    keeps_started = False

    def __init__(self, nodes: Sequence[SchedNode], config: SchedulerConfig, clock: Callable[[], float]) -> None:
        usable = [n for n in nodes if n.schedulable]
        self.fm = FreeMap([n.name for n in usable], [n.gpus for n in usable], [n.topology_group for n in usable])
        self.config = config
        self.clock = clock
        self.queue: list[Candidate] = []
        self.lookahead: list[Running] = []  # sorted by expected end (start + walltime)
        self.ends: list[tuple[float, int, Running]] = []  # heap by real end
        self.records = ScheduleRecords(config.name, self.fm.names)
        self.pass_times = array("d")  # a C double a pass: a replay of millions of jobs runs millions of passes
        self.by_id: dict[str, TraceJob] = {}  # queued and (`keeps_started`) started jobs
        self.seq = 0
        self.walltimes: dict[tuple[int, int], list[float]] = {}  # per queued shape, its jobs' walltimes, sorted
        self.by_shape: dict[tuple[int, int], ShapeQueue] = {}  # per queued shape, its jobs by key (`QueueIndex`)
        self.protected: set[str] = set()  # starving jobs stay protected from pass to pass until they start
        self.by_age: list[Candidate] = []  # the queue oldest first, for the starvation guard (`QueueIndex`)
        self.queued: dict[str, Candidate] = {}
        self.gpu_s = Fraction(0)  # the queue's GPU-seconds, exact: a float running sum would drift from the sum
        self.queued_walltimes: list[float] = []  # every queued job's walltime, sorted: the starving floor's median
        self.claimer: str | None = None  # whom the last pass's claim was for (preemption): first in the next pass
        self.usage = WalltimeUse(config.walltime_use_window if config.starve_after_s is not None else 0)
        self.usage_due: list[tuple[float, int, float, float]] = []  # (end, seq, run time, walltime): learned at the end
        self.pass_config = config  # `config` with the `walltime_use` learned so far

    def admit(self, job: TraceJob) -> Rejected | None:
        """Queue an arriving job, or say why the cluster can never run it.

        Under a policy that plans with exact durations (the textbook references), the job's walltime is how long it
        really runs, whatever walltime the trace asked for.
        """
        refused = self.refusal(job)
        if self.config.exact_walltimes and job.walltime_s != job.runtime_s:
            job = dataclasses.replace(job, walltime_s=job.runtime_s)
        if refused is None:
            self.enqueue(job, *gang_shape(job.num_gpus, job.gpus_per_node, self.fm.max_gpus))
        return refused

    def refusal(self, job: TraceJob) -> Rejected | None:
        """Why the cluster can never run `job` (too large for it), or None."""
        nodes, gpus = gang_shape(job.num_gpus, job.gpus_per_node, self.fm.max_gpus)
        if self.fm.can_host(nodes, gpus):
            return None
        plural = "node" if nodes == 1 else "nodes"
        need = f"{nodes} {plural} with {gpus} GPU{'' if gpus == 1 else 's'}"
        return Rejected(job.job_id, f"needs {need} and the cluster has fewer")

    def enqueue(self, job: TraceJob, nodes: int, gpus: int) -> None:
        """Queue `job` (new, or requeued with its remaining work) as a gang of `nodes` x `gpus`."""
        self.seq += 1
        key = self.config.order_key(job.submit_s, job.walltime_s, job.priority, self.seq)
        candidate = Candidate(job.job_id, job.num_gpus, nodes, gpus, job.walltime_s, job.submit_s, key, job.priority)
        insort(self.queue, candidate, key=queue_key)
        insort(self.walltimes.setdefault((nodes, gpus), []), job.walltime_s)
        insort(self.queued_walltimes, job.walltime_s)
        self.by_shape.setdefault((nodes, gpus), ShapeQueue()).add(candidate)
        insort(self.by_age, candidate, key=age_order)
        self.by_id[job.job_id] = job
        self.queued[job.job_id] = candidate
        self.gpu_s += job.num_gpus * Fraction(job.walltime_s)

    def preempted(self) -> tuple[int, float]:
        """Jobs stopped by preemption, and the GPU-seconds of their grace periods (none here)."""
        return 0, 0.0

    def pending(self) -> bool:
        """Whether jobs still wait to start (the replay goes on while they do)."""
        return bool(self.queue)

    def next_event(self) -> float:
        """When the next running job ends (infinity when none runs)."""
        return self.ends[0][0] if self.ends else _NEVER

    def finish_until(self, now: float) -> None:
        """End the running jobs due by `now`, giving their GPUs back."""
        while self.ends and self.ends[0][0] <= now:
            _, _, entry = heapq.heappop(self.ends)
            del self.lookahead[bisect_left(self.lookahead, entry)]
            for index, gpus in entry[2]:
                self.fm.give(index, gpus)

    def schedule(self, now: float, explain: bool = False, follow_up: bool = True) -> PassOutcome:
        """Run the pass at `now` and carry it out; `explain` also describes every waiting job (`replay_explain`).

        Without `follow_up` the pass starts jobs but decides nothing more (no preemption): `replay_explain` asks so
        for an instant at which the replay itself runs no pass.
        """
        began = self.clock()
        config = self.learned_config(now)
        shapes = {shape: walltimes[0] for shape, walltimes in self.walltimes.items() if walltimes}
        index = QueueIndex(
            shapes, self.by_age, self.queued, float(self.gpu_s), self.by_shape, walltimes=self.queued_walltimes
        )
        outcome = plan(
            self.fm,
            self.queue,
            self.lookahead,
            now,
            config,
            explain=explain,
            protected=self.protected,
            index=index,
            claim_for=self.claim_for(now),
            claimer=self.claimer,
        )
        self.pass_times.append(self.clock() - began)
        self.protected = outcome.protected
        self.claimer = outcome.claim.job.id if outcome.claim is not None else None
        if outcome.started:
            for started in outcome.started:
                self.launch(started, now)
            for started in outcome.started:
                self.dequeue(started.job)
        if follow_up:
            self.after_pass(outcome, now)
        return outcome

    def learned_config(self, now: float) -> SchedulerConfig:
        """The policy of the pass at `now`, its `walltime_use` learned from the jobs that ended by then.

        A job's share of its walltime is known when it ends (`WalltimeUse`); it depends on `now` only, not on how
        many passes ran, so `replay_explain`'s extra pass sees what the replay's own pass would. With exact
        walltimes the share stays 1 and the configuration is the policy's own.
        """
        due = self.usage_due
        if not due or due[0][0] > now:
            return self.pass_config
        while due and due[0][0] <= now:
            _, _, runtime, walltime = heapq.heappop(due)
            self.usage.add(runtime, walltime)
        use = self.usage.value()
        if use is not None and use != self.pass_config.walltime_use:
            self.pass_config = dataclasses.replace(self.config, walltime_use=use)
        return self.pass_config

    def claim_for(self, now: float) -> ClaimFor | None:
        """The pass's `claim_for` (None here: no preemption; see `preempt_replay`)."""
        return None

    def after_pass(self, outcome: PassOutcome, now: float) -> None:
        """What a replay does after each pass beyond starting jobs (nothing here; see `preempt_replay`)."""

    def launch(self, started: Started, now: float) -> Running:
        """Run a job the pass started (its GPUs are already taken): record it and schedule its end."""
        job = self.by_id[started.job.id] if self.keeps_started else self.by_id.pop(started.job.id)
        self.seq += 1
        used = split_gang(job.num_gpus, len(started.chosen))
        held = tuple(zip(started.chosen, used, strict=True))
        entry: Running = (now + job.walltime_s, self.seq, held)
        insort(self.lookahead, entry)
        end = now + job.runtime_s
        heapq.heappush(self.ends, (end, self.seq, entry))
        if self.usage.window:
            heapq.heappush(self.usage_due, (end, self.seq, job.runtime_s, job.walltime_s))
        self.records.append(job.job_id, job.submit_s, (now, end), job.num_gpus, (started.chosen, used))
        return entry

    def dequeue(self, job: Candidate) -> None:
        """Take a job that starts (or is about to) out of the queue."""
        at = bisect_left(self.queue, job.key, key=queue_key)
        if self.queue[at] is not job:
            raise FactoryError(f"simulator bug: started job {job.id} is not in the queue")
        del self.queue[at]
        walltimes = self.walltimes[(job.nodes, job.gpus)]
        del walltimes[bisect_left(walltimes, job.walltime)]
        del self.queued_walltimes[bisect_left(self.queued_walltimes, job.walltime)]
        if not self.by_shape[(job.nodes, job.gpus)].remove(job):
            raise FactoryError(f"simulator bug: started job {job.id} is not in the shape index")
        at = bisect_left(self.by_age, age_order(job), key=age_order)
        if self.by_age[at] is not job:
            raise FactoryError(f"simulator bug: started job {job.id} is not in the age index")
        del self.by_age[at]
        del self.queued[job.id]
        self.gpu_s -= job.num_gpus * Fraction(job.walltime)


def simulate(
    trace: Sequence[TraceJob],
    nodes: Sequence[SchedNode],
    config: SchedulerConfig,
    clock: Callable[[], float] = time.process_time,
    progress: Progress | None = None,
) -> SimulationResult:
    """Replay `trace` on `nodes` under `config`; raises `FactoryError` if the schedule breaks a rule.

    Pass times are measured with `clock`, CPU time of this process by default: on a shared machine wall time
    measures the neighbours as much as the scheduler. `progress` hears how far the arrivals have got.
    """
    replay = new_replay(nodes, config, clock)
    rejected = drive(replay, trace, progress=progress)
    records = replay.records
    capacity = {n.name: n.gpus for n in nodes if n.schedulable}
    problems = check_schedule(records, capacity, trace)
    if problems:
        raise FactoryError(f"simulator bug: invalid schedule under {config.name}: {problems[0]}")
    stopped, grace_gpu_s = replay.preempted()
    return SimulationResult(
        config.name, records, tuple(rejected), replay.pass_times, sum(capacity.values()), stopped, grace_gpu_s
    )


def new_replay(
    nodes: Sequence[SchedNode], config: SchedulerConfig, clock: Callable[[], float] = time.process_time
) -> Replay:
    """The replay for `config`: the one that carries out preemptions when the policy preempts."""
    if not config.preemption:
        return Replay(nodes, config, clock)
    from factoryctl.scheduler.preempt_replay import PreemptingReplay  # here: it builds on `Replay`

    return PreemptingReplay(nodes, config, clock)


def drive(
    replay: Replay, trace: Sequence[TraceJob], until: float = _NEVER, progress: Progress | None = None
) -> list[Rejected]:
    """Feed `replay` the trace's arrivals and its own job ends, with a pass at each event; return the rejected jobs.

    With `until`, stop at that time: every arrival and job end up to it applied, the pass at `until` not run
    (`replay_explain` runs that one itself, explaining it). `progress` is told the arrivals so far now and then.
    """
    order, submits = arrival_order(trace)  # indices: a job is built as it arrives, not all of them at once
    rejected: list[Rejected] = []
    i, count = 0, len(order)
    step = told = max(1, count // 50)
    while i < count or replay.pending():
        if progress is not None and i >= told:
            progress(i, count)
            told = i + step
        next_arrival = submits[order[i]] if i < count else _NEVER
        now = min(next_arrival, replay.next_event(), until)
        if now == _NEVER:
            stuck = ", ".join(c.id for c in replay.queue[:5])
            raise FactoryError(f"simulator bug: jobs {stuck} wait on an idle cluster")
        replay.finish_until(now)
        while i < count and submits[order[i]] <= now:
            refused = replay.admit(trace[order[i]])
            if refused is not None:
                rejected.append(refused)
            i += 1
        if now == until:
            return rejected
        replay.schedule(now)
    if until != _NEVER:
        replay.finish_until(until)
    return rejected
