"""A parsed trace held in columns, so a trace of millions of jobs fits in a laptop's memory.

A `TraceJob` object, its two floats and its slot in a list cost about 210 bytes a job; a 1 GiB trace (27 million
jobs) took 7 GB before the replay had begun. Here each job is its id (the string the CSV gave, shared with every
record the replay writes of it) and six numbers in typed arrays: about 110 bytes. `TraceJobs` reads as a
`Sequence[TraceJob]`, building the job it is asked for, so the replay and the checks read it as they read a list.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

from factoryctl.scheduler.columns import ColumnSequence
from factoryctl.scheduler.trace import TraceJob

#: `gpus_per_node` as stored: 0 is "the trace gives no shape" (None); a trace's shape is at least 1.
_NO_SHAPE = 0


class TraceJobs(ColumnSequence[TraceJob]):
    """The jobs of a trace in file order, one column per field (ids in a list, numbers in arrays).

    Floats are kept as C doubles and counts as C ints, which hold what `TraceJob` holds exactly: a job read back
    equals the job appended. `job_ids`, `submit_times` and `gpu_counts` are read directly by the replay and its
    check (no job built).
    """

    __slots__ = ("_duration", "_per_node", "_priority", "_walltime", "gpu_counts", "job_ids", "submit_times")

    def __init__(self, jobs: Iterable[TraceJob] = ()) -> None:
        self.job_ids: list[str] = []
        self.submit_times = array("d")
        self._duration = array("d")
        self._walltime = array("d")
        self.gpu_counts = array("i")
        self._per_node = array("i")
        self._priority = array("i")
        for job in jobs:
            self.append(job)

    def append(self, job: TraceJob) -> None:
        """Add `job` at the end."""
        self.job_ids.append(job.job_id)
        self.submit_times.append(job.submit_s)
        self._duration.append(job.duration_s)
        self._walltime.append(job.walltime_s)
        self.gpu_counts.append(job.num_gpus)
        self._per_node.append(_NO_SHAPE if job.gpus_per_node is None else job.gpus_per_node)
        self._priority.append(job.priority)

    def __len__(self) -> int:
        """How many jobs the trace holds."""
        return len(self.job_ids)

    def _item(self, i: int) -> TraceJob:
        per_node, duration, walltime = self._per_node[i], self._duration[i], self._walltime[i]
        return TraceJob(
            self.job_ids[i],
            self.submit_times[i],
            duration,
            self.gpu_counts[i],
            None if per_node == _NO_SHAPE else per_node,
            self._priority[i],
            duration if walltime == duration else walltime,  # one float object, as the parser made it: a queued job
        )


def arrival_order(trace: Sequence[TraceJob]) -> tuple[Sequence[int], Sequence[float]]:
    """The trace's indices by submit time, ties in file order, and every job's submit time (in file order).

    A trace in submit order (the usual one) costs no list of indices (`range`); another is sorted by index, as
    `sorted(trace, key=submit)` would order its jobs, without holding every job at once.
    """
    times = trace.submit_times if isinstance(trace, TraceJobs) else [job.submit_s for job in trace]
    if all(times[i] <= times[i + 1] for i in range(len(times) - 1)):
        return range(len(times)), times
    return array("q", sorted(range(len(times)), key=times.__getitem__)), times  # 8 bytes an index, not 40
