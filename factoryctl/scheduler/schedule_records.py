"""The replay's records (one per run segment) held in columns, so every policy's schedule of a big trace fits.

A `JobRecord` object with its floats and its allocation's tuples cost about 340 bytes; `sched simulate` keeps
every policy's schedule until it writes `--schedule-out`, so four policies on a 27-million-job trace needed tens
of GB. Here a record is its job's id (the trace's own string, shared), three doubles, a GPU count and its
allocation as node numbers and GPU counts in typed arrays: about 50 bytes. `ScheduleRecords` reads as a
`Sequence[JobRecord]` (each built when asked for); the metrics and the schedule check read the columns directly.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from factoryctl.scheduler.columns import ColumnSequence


@dataclass(frozen=True)
class JobRecord:
    """Where and when one trace job ran under one policy (a `--schedule-out` row)."""

    job_id: str
    policy: str
    submit_s: float
    start_s: float
    end_s: float
    num_gpus: int
    allocation: tuple[tuple[str, int], ...]

    @property
    def queue_s(self) -> float:
        """Time spent waiting."""
        return self.start_s - self.submit_s

    @property
    def jct_s(self) -> float:
        """Job completion time: submit to end."""
        return self.end_s - self.submit_s

    def allocation_text(self) -> str:
        """`n017:8 n018:8`."""
        return " ".join(f"{node}:{gpus}" for node, gpus in self.allocation)


class ScheduleRecords(ColumnSequence[JobRecord]):
    """One policy's records in the order they were written, one column per field.

    `names` are the cluster's node names: an allocation keeps node numbers into them. `segmented` holds the ids of
    jobs cut short (`cut`, a preemption), the only ones with more than one record. The metrics, the check and the
    CSV read `job_ids`, `submit_times`, `start_times`, `end_times` and `gpu_counts` directly (no record built).
    """

    __slots__ = (
        "_at",
        "_node",
        "_node_gpus",
        "end_times",
        "gpu_counts",
        "job_ids",
        "names",
        "policy",
        "segmented",
        "start_times",
        "submit_times",
    )

    def __init__(self, policy: str, names: Sequence[str]) -> None:
        self.policy = policy
        self.names = tuple(names)
        self.segmented: set[str] = set()
        self.job_ids: list[str] = []
        self.submit_times = array("d")
        self.start_times = array("d")
        self.end_times = array("d")
        self.gpu_counts = array("i")
        self._at = array("q", [0])  # record i's allocation is _node[_at[i]:_at[i + 1]]
        self._node = array("i")
        self._node_gpus = array("i")

    @classmethod
    def of(cls, records: Iterable[JobRecord], names: Sequence[str] = ()) -> ScheduleRecords:
        """`records` (any sequence of them, as tests build) in columns; their nodes are added to `names` as met."""
        known = list(names)
        number = {name: i for i, name in enumerate(known)}
        rows = list(records)
        for record in rows:
            for node, _ in record.allocation:
                if node not in number:
                    number[node] = len(known)
                    known.append(node)
        out = cls(rows[0].policy if rows else "", known)
        out.segmented = {job_id for job_id, count in Counter(r.job_id for r in rows).items() if count > 1}
        for r in rows:
            nodes = [number[node] for node, _ in r.allocation]
            out.append(r.job_id, r.submit_s, (r.start_s, r.end_s), r.num_gpus, (nodes, [g for _, g in r.allocation]))
        return out

    def append(
        self,
        job_id: str,
        submit_s: float,
        run: tuple[float, float],
        num_gpus: int,
        allocation: tuple[Sequence[int], Sequence[int]],
    ) -> None:
        """Add a record: the job, its submit time, its run (start, end), its GPUs, and (node numbers, GPUs on each)."""
        nodes, gpus = allocation
        self.job_ids.append(job_id)
        self.submit_times.append(submit_s)
        self.start_times.append(run[0])
        self.end_times.append(run[1])
        self.gpu_counts.append(num_gpus)
        self._node.extend(nodes)
        self._node_gpus.extend(gpus)
        self._at.append(len(self._node))

    def cut(self, index: int, end_s: float) -> None:
        """End record `index` at `end_s` (a preempted run segment): its job will run again in another record."""
        self.end_times[index] = end_s
        self.segmented.add(self.job_ids[index])

    def __len__(self) -> int:
        """How many records (run segments) there are."""
        return len(self.job_ids)

    def _item(self, i: int) -> JobRecord:
        return JobRecord(
            self.job_ids[i],
            self.policy,
            self.submit_times[i],
            self.start_times[i],
            self.end_times[i],
            self.gpu_counts[i],
            self.allocation(i),
        )

    def allocation(self, i: int) -> tuple[tuple[str, int], ...]:
        """Record `i`'s nodes and the GPUs it holds on each, as `JobRecord.allocation`."""
        names, begin, end = self.names, self._at[i], self._at[i + 1]
        return tuple(zip([names[n] for n in self._node[begin:end]], self._node_gpus[begin:end], strict=True))

    def held(self, i: int) -> Iterator[tuple[int, int]]:
        """Record `i`'s (node number, GPUs) pairs."""
        begin, end = self._at[i], self._at[i + 1]
        return zip(self._node[begin:end], self._node_gpus[begin:end], strict=True)


def as_columns(records: Sequence[JobRecord]) -> ScheduleRecords:
    """`records` as columns: themselves when they are, else copied (a hand-built tuple of records)."""
    return records if isinstance(records, ScheduleRecords) else ScheduleRecords.of(records)
