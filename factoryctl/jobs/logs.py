"""`jobs logs`: each rank's output read from its node, every line labelled with its rank (`0: ...`, as `srun --label`).

A rank's stdout and stderr are one file on its node (the agent's `logs` op reads it by byte offset). `--tail N` reads
at most the last `TAIL_BYTES_PER_LINE` x N bytes of each rank and keeps its last N lines; `--follow` asks each node
for what was added since, every second, until the job is over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.jobs.node_calls import on_nodes
from factoryctl.jobs.rank_env import launch_id
from factoryctl.model.jobs import Job, Rank
from factoryctl.transport.session import AgentSession

#: The most one request reads (the agent's own limit is 1 MiB).
PAGE_BYTES = 1 << 20
#: Bytes read per line asked for by `--tail` (long lines may leave fewer lines than asked).
TAIL_BYTES_PER_LINE = 1024


@dataclass
class LogCursor:
    """Where the next read of one rank's log starts, and the unfinished last line carried over."""

    rank: Rank
    offset: int = 0
    partial: str = ""
    lines: list[str] = field(default_factory=list)


def read_more(
    config: FactoryConfig, job: Job, cursors: Sequence[LogCursor], tail_lines: int | None = None
) -> list[NodeError]:
    """Read each cursor's log on from its offset (or its tail), adding its complete lines; the nodes that failed."""
    key = launch_id(job)
    by_node: dict[str, list[LogCursor]] = {}
    for c in cursors:
        by_node.setdefault(c.rank.node, []).append(c)

    def read(session: AgentSession, node: str) -> None:
        for c in by_node[node]:
            _read_rank(session, key, c, tail_lines)

    answers = on_nodes(config, list(by_node), read)
    return [a for a in answers.values() if isinstance(a, NodeError)]


def _read_rank(session: AgentSession, key: str, cursor: LogCursor, tail_lines: int | None) -> None:
    if tail_lines is not None and cursor.offset == 0:
        cursor.offset = -min(PAGE_BYTES, max(1, tail_lines) * TAIL_BYTES_PER_LINE)
    while True:
        got = session.rank_log(key, cursor.rank.rank, cursor.offset, PAGE_BYTES)
        text = cursor.partial + str(got.get("data", ""))
        *complete, cursor.partial = text.split("\n")
        if cursor.offset < 0 and int(got.get("offset", 0)) > len(str(got.get("data", "")).encode()):
            complete = complete[1:]  # a tail starts mid-line: its first piece is no whole line
        cursor.lines.extend(complete)
        if tail_lines is not None:
            del cursor.lines[: max(0, len(cursor.lines) - tail_lines)]
        cursor.offset = int(got.get("offset", 0))
        if cursor.offset >= int(got.get("size", 0)):
            return


def labelled(cursors: Sequence[LogCursor], final: bool = False) -> Iterator[str]:
    """The lines read so far, rank by rank, each prefixed `R: `; `final` adds each log's unfinished last line."""
    for c in cursors:
        for line in c.lines:
            yield f"{c.rank.rank}: {line}"
        c.lines.clear()
        if final and c.partial:
            yield f"{c.rank.rank}: {c.partial}"
            c.partial = ""


def cursors_for(job: Job, rank: int | None = None) -> list[LogCursor]:
    """A cursor for each of the job's ranks (only `rank` when given)."""
    return [LogCursor(r) for r in job.ranks if rank is None or r.rank == rank]


def follow(
    config: FactoryConfig, job_now: Callable[[], Job], cursors: list[LogCursor], say: Callable[[str], None],
    wait: Callable[[float], bool], restarted: Callable[[Job], None] | None = None,
    silent: Callable[[list[NodeError]], None] | None = None, first: Job | None = None,
) -> list[NodeError]:  # fmt: skip
    """Print lines as they come until the job is over (then the rest) or `wait` says stop; the last pass's errors.

    A gang requeued and launched again is followed on: the old launch's last lines are printed, `restarted` is told
    of the new launch, and its ranks (those of `cursors`' rank numbers) are read from their start. `silent` is told
    the nodes that cannot be read each time that set changes (a node down is said at once, not only at the end).
    `first`: the job as `cursors` were first read from (a restart since then is followed, not skipped).
    """
    errors: list[NodeError] = []
    wanted = {c.rank.rank for c in cursors}
    followed = first if first is not None else job_now()  # the launch `cursors` were read from
    failing: set[str] = set()
    while True:
        job = job_now()
        if job.ranks and launch_id(job) != launch_id(followed):
            read_more(config, followed, cursors)
            for line in labelled(cursors, final=True):
                say(line)
            if restarted is not None:
                restarted(job)
            cursors[:] = [c for c in cursors_for(job) if c.rank.rank in wanted]
        if job.ranks:
            followed = job
        errors = read_more(config, followed, cursors)
        if silent is not None and {e.node for e in errors} != failing:
            failing = {e.node for e in errors}
            if errors:
                silent(errors)
        over = job.state.terminal
        for line in labelled(cursors, final=over):
            say(line)
        if over or wait(1.0):
            return errors
