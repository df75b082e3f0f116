"""The dashboard's read of the job table: how many jobs run and wait, and the few its panel has room for.

The dashboard reads it every interval (1 s). `Store.jobs` parses every record it returns, and counting a queue of
10,000 waiting jobs that way took 140 ms of every second to show the twenty that fit. Here the counts come off the
`job_state` index alone (no record read) and only `shown` records of each kind are parsed (5 ms for that queue).
Jobs that ended are asked for apart (`jobs_ended`), through the `job_state` index on (state, updated_ms): an ended
job's row is last written when it ends, so the last hour's are found without reading older ones; the dashboard
asks for them only when a job may have ended or a while passed (live/jobs_feed.py). A store older than schema 6 (a
reader does not migrate) has no job table: no job was ever submitted to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factoryctl.model.jobs import Job, JobState
from factoryctl.store.connection import StoreConnection
from factoryctl.store.jobs import JOBS_SCHEMA, job_from_row
from factoryctl.store.rows import to_ms

#: The states of each kind, as stored (`JobState` values).
ACTIVE = tuple(s.value for s in JobState if s.active)
WAITING = tuple(s.value for s in JobState if s.waiting)
ENDED = tuple(s.value for s in JobState if s.terminal)


@dataclass(frozen=True)
class JobBoard:
    """The jobs holding GPUs and those waiting: how many of each, and the first few of each in submit order."""

    running: int  # STARTING and RUNNING jobs, all of them
    waiting: int  # PENDING and DEFERRED jobs, all of them
    active: tuple[Job, ...] = ()
    queued: tuple[Job, ...] = ()


def _in(states: Sequence[str]) -> str:
    """`state IN (?, ?)`, one parameter per state."""
    return f"state IN ({', '.join('?' * len(states))})"


def job_board(store: StoreConnection, shown: int) -> JobBoard:
    """How many jobs run and wait, and the first `shown` of each (submit order): two queries, `shown` records parsed."""
    if store.schema_version < JOBS_SCHEMA:
        return JobBoard(0, 0)
    counted = ACTIVE + WAITING
    counts = dict(store._query(f"SELECT state, COUNT(*) FROM job WHERE {_in(counted)} GROUP BY state", counted))
    first = "SELECT record FROM job WHERE {} ORDER BY submitted_ms, id LIMIT ?"
    rows = store._query(
        f"SELECT 0, record FROM ({first.format(_in(ACTIVE))}) "
        f"UNION ALL SELECT 1, record FROM ({first.format(_in(WAITING))})",
        [*ACTIVE, shown, *WAITING, shown],
    )
    return JobBoard(
        sum(int(counts.get(s, 0)) for s in ACTIVE),
        sum(int(counts.get(s, 0)) for s in WAITING),
        tuple(job_from_row(row[1:]) for row in rows if row[0] == 0),
        tuple(job_from_row(row[1:]) for row in rows if row[0] == 1),
    )


def jobs_ended(store: StoreConnection, since: float, limit: int) -> list[Job]:
    """The jobs that ended at or after `since`, the last ended first (the `limit` last).

    An ended job's row was last written when it ended (a terminal job never changes again), so `updated_ms` says
    when; the `job_state` index (state, updated_ms) finds them without reading older rows.
    """
    if store.schema_version < JOBS_SCHEMA:
        return []
    found = store._query(
        f"SELECT record FROM job WHERE {_in(ENDED)} AND updated_ms >= ? ORDER BY updated_ms DESC, id LIMIT ?",
        [*ENDED, to_ms(since), limit],
    )
    return [job_from_row(row) for row in found]
