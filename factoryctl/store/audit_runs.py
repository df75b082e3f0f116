"""The audit log's requests and the process that asked each, so a request of a killed command does not stay open.

A power-limit request is written (outcome `unknown`) before its node is asked and replaced by the answer
(`logs.EventAndAuditLog`). A command killed in between (SIGKILL, the OOM killer) leaves it `unknown`, and nothing
came back to it: the next `power set` of the same GPUs finds them at the value and writes nothing, so `audit` said
`unknown` for ever, as of a command still running. Each request now records its process (`who.Run`), and a later
command closes the requests of a process that ended (`close_ended`; `logs.add_audit_requests` records the process):
outcome `abandoned`, the request kept as it was written. Only requests are in the index (`schema` 5), so a log of a million answers is never scanned for them.
A request whose process cannot be judged (another host's) is left `unknown`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from factoryctl.store.connection import StoreConnection
from factoryctl.store.rows import UNKNOWN
from factoryctl.store.who import Run

#: An audit entry's outcome: a request whose command ended before it heard back (killed, or it gave up waiting on the
#: node); the limit may or may not have changed, as for `unknown`, but nothing will ever answer it now.
ABANDONED = "abandoned"
#: Processes judged per call, at most: a store full of another host's requests costs a bounded read.
MAX_RUNS = 100

#: A request, as the partial index of requests (`schema` 5) is defined: a literal, so the index serves the query.
_REQUEST = f"outcome = '{UNKNOWN}'"


@dataclass(frozen=True)
class Abandoned:
    """The requests of one ended process, closed `abandoned`: its pid (None: an older factoryctl's) and their nodes."""

    pid: int | None
    nodes: list[str]
    entries: int


def close_ended(store: StoreConnection, ended: Callable[[Run], bool]) -> list[Abandoned]:
    """Close (outcome `abandoned`) the requests of every process that `ended`; what was closed, by process.

    A request of no process (written before schema 5 recorded it, or by a factoryctl that does not) counts as of an
    ended one: its command, if it still runs, replaces it with its answer all the same (by id, whatever the outcome).
    The processes are read off the index of requests, at most MAX_RUNS of them; one transaction per process.
    """
    found = store._query(f"SELECT DISTINCT run FROM audit WHERE {_REQUEST} ORDER BY run LIMIT ?", [MAX_RUNS])
    closed = []
    for (text,) in found:
        run = Run.parsed(text) if text else None
        if text and (run is None or not ended(run)):
            continue  # running, of another host, or a form this factoryctl does not know: left as it is
        done = _closed(store, text)
        if done is not None:
            closed.append(Abandoned(None if run is None else run.pid, *done))
    return closed


def _closed(store: StoreConnection, run: str | None) -> tuple[list[str], int] | None:
    """Close the requests of process `run` (None: of none); their nodes and how many, or None when none was left."""
    where = f"{_REQUEST} AND run IS NULL" if run is None else f"{_REQUEST} AND run = ?"
    params = [] if run is None else [run]
    with store._transaction("audit entry") as db:
        counted = db.execute(f"SELECT node, count(*) FROM audit WHERE {where} GROUP BY node", params).fetchall()
        if not counted:
            return None
        db.execute(f"UPDATE audit SET outcome = ? WHERE {where}", [ABANDONED, *params])
    return [str(node) for node, _ in counted], sum(int(n) for _, n in counted)
