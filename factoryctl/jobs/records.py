"""Writing a pass's job changes: each record compare-and-set against the state it was read in, and an event each.

A `jobs cancel` may land between a pass reading a job and writing it: the write then finds another state and is
dropped (the cancel wins; the pass's next read sees it). Every change of state is also an event, written with it
(`job_running`, `job_failed`, ...), so `factoryctl events` and the dashboard's feed show a job's life beside its
nodes'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factoryctl.model.folding import fold_nodes
from factoryctl.model.jobs import Job
from factoryctl.store.jobs import job_event
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@dataclass(frozen=True)
class Change:
    """A job's record before and after a step of the pass."""

    before: Job
    after: Job
    #: The event kind of a step that is no state change (`store.jobs.PREEMPT_EVENT_KINDS`), written with it.
    event: str | None = None

    @property
    def state_changed(self) -> bool:
        """Whether the step moved the job to another state (an event is written then)."""
        return self.before.state is not self.after.state


def running_reason(job: Job) -> str:
    """A RUNNING gang's reason: where it runs (`running on n[01-02]`)."""
    return f"running on {fold_nodes(list(job.nodes))}"


def write_changes(store: Store, changes: Sequence[Change], now: float) -> list[Change]:
    """Write each change whose job is still in its `before` state (one transaction); returns those written."""
    moved = [c for c in changes if c.after != c.before]
    updates = [(c.after, c.before.state, _events(c, now)) for c in moved]
    return [c for c, written in zip(moved, store.update_jobs(updates), strict=True) if written]


def _events(change: Change, now: float) -> list[Event]:
    """The change's event: its step's own (`Change.event`), else its new state's; none for a change of fields only."""
    if change.event is not None:
        return [job_event(change.after, now, change.event)]
    return [job_event(change.after, now)] if change.state_changed else []
