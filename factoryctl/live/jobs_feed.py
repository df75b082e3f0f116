"""The jobs panel's lines, read from the store each snapshot at a cost a queue of 10,000 jobs does not change.

Every snapshot counts the running and waiting jobs and reads the first `JOBS_SHOWN` of each (`store.job_board`:
the counts come off an index, only the jobs shown are parsed). Jobs that ended in the last `ENDED_WINDOW_S` are
shown after them, as `jobs list` shows them by default (found through the job_state index on state and time); they
are parsed again only when a job may have ended (fewer run or wait, or one shown is gone) or `ENDED_EVERY_S`
passed, not every second: a queue that only grows never reads them again sooner. Imports no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from factoryctl.live.services import JobLine

if TYPE_CHECKING:
    from factoryctl.model.jobs import Job
    from factoryctl.store.connection import StoreConnection

#: Running and waiting jobs read per snapshot, each: more than a jobs panel has lines.
JOBS_SHOWN = 50
#: Jobs ended this long ago or less are shown, last (as `jobs list` without `--all`: cli/jobs.py RECENT_S).
ENDED_WINDOW_S = 3600.0
#: The ended jobs are read again at least this often, besides whenever the running or waiting ones changed.
ENDED_EVERY_S = 10.0


@dataclass(frozen=True)
class JobsRead:
    """What one snapshot holds of the jobs: the lines shown, and how many run and wait in all."""

    lines: tuple[JobLine, ...]
    running: int
    waiting: int


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

    def read(self, store: StoreConnection, now: float) -> JobsRead:
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
        return JobsRead(tuple(job_line(j, now) for j in jobs), board.running, board.waiting)

    def _may_have_ended(self, live: int, ids: frozenset[str]) -> bool:
        """Whether a job may have ended since the last read: fewer run or wait, or one read then is gone.

        A job submitted only adds to the queue: a busy queue does not make every refresh read the ended jobs. A job
        that ended while another was submitted leaves the count as it was; if it was not among those read, it shows
        at the next `ENDED_EVERY_S` read.
        """
        before, read = self._seen
        return live < before or not read <= ids
