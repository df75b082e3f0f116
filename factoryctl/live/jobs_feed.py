"""The jobs panel's lines, read from the store each snapshot at a cost a queue of 10,000 jobs does not change.

Every snapshot counts the running and waiting jobs and reads the first `JOBS_SHOWN` of each (`store.job_board`:
the counts come off an index, only the jobs shown are parsed). Jobs that ended in the last `ENDED_WINDOW_S` are
shown after them, as `jobs list` shows them by default (found through the job_state index on state and time); they
are parsed again only when a job may have ended (fewer run or wait, or one shown is gone) or `ENDED_EVERY_S`
passed, not every second: a queue that only grows never reads them again sooner. Which job holds each GPU (the
node screen's Job column, `gpus -o wide`'s JOB) comes from the running jobs' ranks (jobs/holders.py): those read for
the panel when they are all of them; else every running job is read on a cadence of its own, when how many run or
the first ones changed, and every `HOLDERS_EVERY_S` (one ending as another starts, in a full factory). Imports no
Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factoryctl.jobs.holders import GpuHolders, holders_of
from factoryctl.live.services import JobLine
from factoryctl.model.jobs import JobState

if TYPE_CHECKING:
    from factoryctl.model.jobs import Job
    from factoryctl.store.job_board import JobBoard
    from factoryctl.store.jobs import JobRecords

#: Running and waiting jobs read per snapshot, each: more than a jobs panel has lines.
JOBS_SHOWN = 50
#: Jobs ended this long ago or less are shown, last (as `jobs list` without `--all`: cli/jobs.py RECENT_S).
ENDED_WINDOW_S = 3600.0
#: The ended jobs are read again at least this often, besides whenever the running or waiting ones changed.
ENDED_EVERY_S = 10.0
#: With more jobs running than `JOBS_SHOWN`, all of them are read for the GPUs' holders at least this often, besides
#: whenever how many run or the first of them changed: 16,000 running jobs cost 54 ms of CPU a read, against 7 ms.
HOLDERS_EVERY_S = 5.0


@dataclass(frozen=True)
class JobsRead:
    """What one snapshot holds of the jobs: the lines shown, and how many run and wait in all."""

    lines: tuple[JobLine, ...]
    running: int
    waiting: int
    #: The job holding each GPU: every running job's ranks (`holders_of`).
    holders: GpuHolders = field(default_factory=GpuHolders)


def job_line(job: Job, now: float) -> JobLine:
    """One job as the panel shows it."""
    nodes = job.nodes
    return JobLine(
        id=job.id,
        name=job.name,
        state=job.state.value,
        num_gpus=job.num_gpus,
        nodes=nodes,
        reason=job.reason or None,
        user=job.user,
        elapsed_s=job.elapsed(now),
    )


class JobsFeed:
    """Reads the store's jobs for each snapshot, the ended ones only when something may have ended (module doc)."""

    def __init__(self) -> None:
        self._ended: tuple[Job, ...] = ()
        self._ended_read_at: float | None = None
        #: How many jobs ran or waited at the last read, and the ids read then (`_may_have_ended`).
        self._seen: tuple[int, frozenset[str]] = (0, frozenset())
        #: The GPUs' holders read last, when, and the running jobs' count and first ids then (`_holders`).
        self._holders: tuple[GpuHolders, float, tuple[int, frozenset[str]]] | None = None

    def read(self, store: JobRecords, now: float) -> JobsRead:
        """The jobs of `store` now; raises `StoreError` when it cannot be read."""
        from factoryctl.store.job_board import job_board, jobs_ended

        board = job_board(store, JOBS_SHOWN)
        seen = (board.running + board.waiting, frozenset(j.id for j in (*board.active, *board.queued)))
        due = self._ended_read_at is None or now - self._ended_read_at >= ENDED_EVERY_S
        if due or self._may_have_ended(*seen):
            self._ended = tuple(jobs_ended(store, now - ENDED_WINDOW_S, JOBS_SHOWN))
            self._ended_read_at = now
        self._seen = seen
        ended = tuple(j for j in self._ended if (j.ended_at or now) >= now - ENDED_WINDOW_S)
        jobs = (*board.active, *board.queued, *ended)
        lines = tuple(job_line(j, now) for j in jobs)
        return JobsRead(lines, board.running, board.waiting, self._holders_now(store, board, now))

    def _holders_now(self, store: JobRecords, board: JobBoard, now: float) -> GpuHolders:
        """The job holding each GPU: from the jobs read for the panel when they are every running job.

        Else every running job is read (each record parsed once while it is unchanged, `store.jobs`) when how many
        run or the first ones changed, or `HOLDERS_EVERY_S` passed; in between, the holders read last.
        """
        if len(board.active) >= board.running:
            return holders_of(board.active)
        running = (board.running, frozenset(job.id for job in board.active))
        if self._holders is not None:
            holders, read_at, seen = self._holders
            if seen == running and 0 <= now - read_at < HOLDERS_EVERY_S:
                return holders
        holders = holders_of(store.jobs({state for state in JobState if state.active}))
        self._holders = (holders, now, running)
        return holders

    def _may_have_ended(self, live: int, ids: frozenset[str]) -> bool:
        """Whether a job may have ended since the last read: fewer run or wait, or one read then is gone.

        A job submitted only adds to the queue: a busy queue does not make every refresh read the ended jobs. A job
        that ended while another was submitted leaves the count as it was; if it was not among those read, it shows
        at the next `ENDED_EVERY_S` read.
        """
        before, read = self._seen
        return live < before or not read <= ids
