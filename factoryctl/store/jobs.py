"""The gang scheduler's jobs: the `job` table (schema 6) and the scheduler's memory between passes.

A job is written whole (`model.job_records`) and changed by compare-and-set (`update_job`): `jobs cancel` and a
scheduling pass (`sched tick`, the controller) may act on one job at once, and whichever writes second must see that
the job moved under it rather than overwrite it (a cancelled job relaunched, a finished one requeued).
A reader of a store older than schema 6 (read-only commands do not migrate) has no `job` table: it reads as empty,
as it is, for no job can have been submitted to that store. Job state changes are also events (`job_event`), written
in the same transaction as the change that caused them, so the event log never names a change that did not happen.
A connection keeps the jobs it read, parsed, beside their records' text (`ParsedJobs`): the controller's passes read
the whole queue every interval, and parse again only the records that changed since.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from factoryctl.errors import UsageError
from factoryctl.model.job_records import job_from_record, job_record
from factoryctl.model.jobs import Job, JobState
from factoryctl.store.connection import StoreConnection, StoreError
from factoryctl.store.logs import insert_event, typed_text
from factoryctl.store.rows import Event, to_ms

#: The schema that added the `job` table.
JOBS_SCHEMA = 6
#: The meta keys of the scheduler's memory (`Decisions.protected` and `.claimer` of the last pass).
PROTECTED_KEY = "scheduler.protected"
CLAIMER_KEY = "scheduler.claimer"
#: The executor's other memory between passes (`scheduler_value`): kills owed to silent nodes (jobs/leftovers.py),
#: nodes held out of placements for a while (jobs/silent.py).
OWED_KILLS_KEY = "scheduler.owed_kills"
SILENT_NODES_KEY = "scheduler.silent_nodes"
#: A preemption's SIGTERMs not yet delivered (jobs/preempting.py): written before the stop, sent once a node answers.
OWED_TERMS_KEY = "scheduler.owed_terms"
#: The event kinds of job state changes (`job_event`), one per state: `events --kind` offers them.
JOB_EVENT_KINDS = tuple(f"job_{state.value.lower()}" for state in JobState)
#: The event kinds of a preemption (jobs/preempting.py): a running job asked to stop for another, and requeued.
PREEMPT_EVENT_KINDS = ("job_preempting", "job_preempted")
#: How many matching ids an ambiguous prefix's error names.
_NAMED = 5


def job_event(job: Job, at: float, kind: str | None = None) -> Event:
    """The event of `job` entering its current state: kind `job_<state>` (`JOB_EVENT_KINDS`), naming the job.

    Job events have no node, so the message says which job, where it runs and why (its reason). A failed job is a
    warning (someone should look); every other state change is information. With `kind` (`PREEMPT_EVENT_KINDS`),
    the event of a step that is no state of its own: its message is the job and its reason, which says the step.
    """
    if kind is not None:
        return Event(at, kind, typed_text(f"job {job.id} ({job.name}) {job.reason}") or "", severity="info")
    severity = "warning" if job.state is JobState.FAILED else "info"
    state = job.state.value.lower()
    where = f" on {job.placement.render()}" if job.state is JobState.RUNNING and job.allocation else ""
    said = f": {job.reason}" if job.reason and not where else ""  # a running job's reason is where it runs
    message = typed_text(f"job {job.id} ({job.name}) {state}{where}{said}") or ""  # a typed name: shown to others
    return Event(at, f"job_{state}", message, severity=severity)


def _row_values(job: Job, now: float) -> tuple[Any, ...]:
    """(state, user, submitted_ms, updated_ms, record) of `job` as stored."""
    record = json.dumps(job_record(job), separators=(",", ":"))
    return (job.state.value, job.user, to_ms(job.submitted_at), to_ms(now), record)


def job_from_row(row: Sequence[Any]) -> Job:
    """The job of a row whose first column is its `record` (job_board.py reads rows of its own the same way)."""
    return job_from_record(json.loads(row[0]))


class ParsedJobs:
    """Jobs parsed from their records, each kept with the stored text it was parsed from, to be handed out again.

    A scheduling pass reads every queued and running job (10,000 and more), and parsing their JSON was most of a
    pass that changed nothing. A record whose text is the one parsed last time is the same job, so its `Job` is not
    parsed again. Every write changes the text of the record it writes, whoever wrote it (a pass, `jobs submit`,
    another process's `jobs cancel`), so the next read sees it: the text is the key, not `updated_ms` or a counter,
    which two writes in one millisecond or a writer on another clock could leave unchanged.
    """

    def __init__(self) -> None:
        """Nothing parsed yet."""
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[str, Job]] = {}

    def jobs(self, rows: Sequence[Sequence[Any]], whole: Collection[str] | None) -> list[Job]:
        """The jobs of `rows` (id, record), in order, parsing only the records not kept as they are.

        `whole`: the states (values) whose every job `rows` holds, None for every state; a kept job last seen in
        one of them that `rows` lack has moved on (or is gone) and is forgotten, so only jobs still read are kept.
        """
        kept = self._kept
        found: list[Job] = []
        with self._lock:  # a parse under it: two threads sharing a connection do not parse one record twice
            for job_id, text in rows:
                known = kept.get(job_id)
                if known is None or known[0] != text:
                    known = kept[job_id] = (text, job_from_record(json.loads(text)))
                found.append(known[1])
            if len(kept) > len(rows) and (whole is None or whole):  # a kept job not read: moved on, or gone
                read = {row[0] for row in rows}
                for job_id in [i for i in kept if i not in read]:
                    if whole is None or kept[job_id][1].state.value in whole:
                        del kept[job_id]
        return found


class JobRecords(StoreConnection):
    """Adding, finding, listing and updating jobs; the scheduler's memory in the meta table."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open the store at `path` (`StoreConnection`); its jobs are parsed once per version of their record."""
        super().__init__(path, readonly)
        self._parsed_jobs = ParsedJobs()

    def _has_jobs_table(self) -> bool:
        """False on an older store opened read-only (only a writer migrates it)."""
        return self.schema_version >= JOBS_SCHEMA

    def add_job(self, job: Job, events: Sequence[Event] = ()) -> None:
        """Store a new job (and `events`, in the same transaction); a StoreError if its id is taken already."""
        with self._transaction("job") as db:
            if db.execute("SELECT 1 FROM job WHERE id = ?", (job.id,)).fetchone() is not None:
                raise StoreError(
                    f"the store at {self.path} already has a job {job.id}.",
                    "submit it again: it gets a new id.",
                )
            db.execute(
                "INSERT INTO job (id, state, user, submitted_ms, updated_ms, record) VALUES (?, ?, ?, ?, ?, ?)",
                (job.id, *_row_values(job, time.time())),
            )
            for event in events:
                insert_event(db, event)

    def job(self, job_id: str) -> Job | None:
        """The job with exactly this id, None when there is none."""
        if not self._has_jobs_table():
            return None
        found = self._query("SELECT record FROM job WHERE id = ?", (job_id,))
        return job_from_row(found[0]) if found else None

    def find_job(self, text: str) -> Job:
        """The job `text` names: its id, a unique prefix of its id, or its name.

        An id first, then the only job whose id starts with `text` (as git and docker take ids), then a job named
        `text` (`jobs logs train`): the only one not ended, else the one submitted last. A UsageError (exit 2) when none matches, or when several ids do (it names some: the user types more).
        """
        if not text:
            raise UsageError("no job id was given.", "`factoryctl jobs list --all` lists every job.")
        exact = self.job(text)
        if exact is not None:
            return exact
        ids = self._ids_starting(text)
        found = self.job(ids[0]) if len(ids) == 1 else None
        if found is not None:
            return found
        if not ids:
            return self._named(text)
        count = self._count_starting(text) if len(ids) > _NAMED else len(ids)
        named = ", ".join(ids[:_NAMED]) + (f" and {count - _NAMED} more" if count > _NAMED else "")
        raise UsageError(f"{text} matches {count} jobs: {named}.", "type more of the job's id.")

    def _named(self, name: str) -> Job:
        """The job named `name`: the only one not ended, else the one submitted last; a UsageError when none is."""
        found = self._query(
            "SELECT record FROM job WHERE json_extract(record, '$.spec.name') = ? ORDER BY submitted_ms, id", (name,)
        ) if self._has_jobs_table() else []  # fmt: skip
        jobs = [job_from_row(row) for row in found]
        live = [job for job in jobs if not job.state.terminal]
        if len(live) > 1:
            ids = ", ".join(job.id for job in live[:_NAMED])
            raise UsageError(f"{len(live)} jobs not ended are named {name}: {ids}.", "give the job's id.")
        if live or jobs:
            return (live or jobs)[-1]
        raise UsageError(f"no job matches {name}.", "`factoryctl jobs list --all` lists every job.")

    def _ids_starting(self, prefix: str) -> list[str]:
        """Up to `_NAMED` + 1 ids that start with `prefix`, in submit order."""
        if not self._has_jobs_table():
            return []
        found = self._query(
            "SELECT id FROM job WHERE substr(id, 1, ?) = ? ORDER BY submitted_ms, id LIMIT ?",
            (len(prefix), prefix, _NAMED + 1),
        )
        return [str(row[0]) for row in found]

    def _count_starting(self, prefix: str) -> int:
        found = self._query("SELECT COUNT(*) FROM job WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))
        return int(found[0][0])

    def jobs(self, states: Collection[JobState] | None = None, limit: int | None = None) -> list[Job]:
        """Jobs in `states` (None: every state), in submit order; with `limit`, the `limit` submitted last."""
        if not self._has_jobs_table() or (states is not None and not states):
            return []
        sql, params = "SELECT id, record FROM job", []
        values = None if states is None else sorted({JobState(s).value for s in states})
        if values is not None:
            sql += f" WHERE state IN ({', '.join('?' * len(values))})"
            params.extend(values)
        if limit is None:
            return self._parsed_jobs.jobs(self._query(sql + " ORDER BY submitted_ms, id", params), values)
        found = self._query(sql + " ORDER BY submitted_ms DESC, id DESC LIMIT ?", [*params, max(limit, 0)])
        return self._parsed_jobs.jobs(found[::-1], ())

    def update_job(self, job: Job, expect: JobState, events: Sequence[Event] = ()) -> bool:
        """Write `job` over the stored one only if that is still in state `expect` (compare-and-set).

        False, and nothing written (nor `events`), when the stored job moved on (another command changed it first) or
        is not there; True when `job` and `events` were written, in one transaction.
        """
        return self.update_jobs([(job, expect, events)])[0]

    def update_jobs(self, updates: Sequence[tuple[Job, JobState, Sequence[Event]]]) -> list[bool]:
        """`update_job` of each (job, expect, events), all in one transaction; whether each was written.

        A pass changes thousands of waiting jobs' reasons at once: one transaction keeps that one commit (one fsync)
        instead of thousands, each compare-and-set still judged on its own.
        """
        if not updates:
            return []
        written: list[bool] = []
        now = time.time()
        with self._transaction("job") as db:
            for job, expect, events in updates:
                changed = db.execute(
                    "UPDATE job SET state = ?, user = ?, submitted_ms = ?, updated_ms = ?, record = ? "
                    "WHERE id = ? AND state = ?",
                    (*_row_values(job, now), job.id, JobState(expect).value),
                ).rowcount
                written.append(changed == 1)
                for event in events if changed == 1 else ():
                    insert_event(db, event)
        return written

    def scheduler_value(self, key: str, default: Any) -> Any:  # noqa: ANN401 - a JSON value of the caller's shape
        """The JSON value kept under the scheduler's meta `key`; `default` when absent, unreadable or another type."""
        try:
            found = json.loads(self.get_meta(key) or "null")
        except ValueError:
            return default
        return found if isinstance(found, type(default)) else default

    def set_scheduler_value(self, key: str, value: Any) -> None:  # noqa: ANN401 - a JSON value
        """Keep a JSON value under the scheduler's meta `key` (keys sorted, so equal values are equal text)."""
        self.set_meta(key, json.dumps(value, sort_keys=True))

    def scheduler_memory(self) -> tuple[frozenset[str], str | None]:
        """`Decisions.protected` and `.claimer` of the last pass (empty and None before the first, or unreadable)."""
        found = dict(self._query("SELECT key, value FROM meta WHERE key IN (?, ?)", (PROTECTED_KEY, CLAIMER_KEY)))
        try:
            listed = json.loads(found.get(PROTECTED_KEY) or "[]")
        except ValueError:
            listed = []
        protected = frozenset(str(j) for j in listed) if isinstance(listed, list) else frozenset[str]()
        claimer = found.get(CLAIMER_KEY)
        return protected, (str(claimer) if claimer else None)

    def set_scheduler_memory(self, protected: Collection[str], claimer: str | None) -> None:
        """Keep a pass's `Decisions.protected` and `.claimer` for the next pass (both in one transaction)."""
        with self._transaction("scheduler memory") as db:
            _set_meta(db, PROTECTED_KEY, json.dumps(sorted(protected)))
            if claimer is None:
                db.execute("DELETE FROM meta WHERE key = ?", (CLAIMER_KEY,))
            else:
                _set_meta(db, CLAIMER_KEY, claimer)


def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
