"""The dashboard's one port to the factory: what it reads (`FactorySnapshot`) and what it may change.

The Textual app never reaches a node, the store or a price feed itself: it calls a `DashboardServices` from thread
workers and renders the frozen values it gets back. `PolledServices` (services_polled.py) talks to the agents
directly; `StoreServices` (services_store.py) reads what the controller wrote, and `AutoServices` switches between
them. Nothing here imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from factoryctl.jobs.holders import GpuHolders
from factoryctl.model.telemetry import NodeSample

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig


@dataclass(frozen=True)
class DashboardEvent:
    """One line of the events panel: a health change, a drain, a power-limit change."""

    time: float  # unix seconds
    node: str | None
    kind: str  # e.g. node_down, node_up, ecc, xid, drain, resume, power_limit
    message: str
    severity: str = "info"  # info | warning | error
    #: The nodes of an event folded from many alike (`64 nodes up (n[01-64])`, event_folding.py); `node` is None then.
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PriceNow:
    """The grid price now and where it is heading (from the configured price source)."""

    price_per_mwh: float
    currency: str = "EUR"
    trend: float | None = None  # price per MWh change over the next hour; None when unknown


@dataclass(frozen=True)
class JobLine:
    """One job in the jobs panel, as the store holds it (`jobs_feed.job_line`; `jobs list` shows the same job).

    `FactorySnapshot.jobs` holds the running jobs, then the waiting ones, then those that ended in the last hour, a
    bounded number of each (`jobs_feed.JOBS_SHOWN`); `jobs_running` and `queue_length` count them all.
    """

    id: str
    name: str
    state: str  # a `JobState` value: PENDING, DEFERRED, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED
    num_gpus: int
    nodes: tuple[str, ...] = ()  # where it runs or ran, rank 0 first; none before it was placed
    reason: str | None = None
    user: str = ""
    #: `jobs list`'s TIME when the snapshot was taken: queued for so long, run, or ran (None: an ended job never ran).
    elapsed_s: float | None = None


@dataclass(frozen=True)
class LateController:
    """The controller whose store is shown holds its lock but has stored no sample for three intervals."""

    pid: int  # 0 when its lock file names none
    stored_at: float | None  # when it last stored a sample (unix seconds, this host's clock); None: never


#: Why a snapshot holds no GPU holders: its services had no store to read the jobs from, or could not read it.
NO_JOB_STORE = "the store holding the jobs could not be read"


@dataclass(frozen=True)
class GpuJob:
    """The job holding one GPU as a snapshot knows it: `job_id`, or None for no job, unless `unknown_why` says."""

    job_id: str | None
    #: Why it is unknown (the store could not be read); None when known, a GPU no job holds included.
    unknown_why: str | None = None


@dataclass(frozen=True)
class FactorySnapshot:
    """Everything the main screen shows, taken at one instant. Frozen: widgets share it without copying."""

    factory: str
    time: float  # when the snapshot was taken (unix seconds)
    nodes: tuple[NodeSample, ...]
    racks: dict[str, str | None] = field(default_factory=dict)
    drained: frozenset[str] = frozenset()
    budget_kw: float | None = None
    interval_s: float = 1.0
    #: Factory GPU power (W), one point per sample over the last hour, oldest first.
    power_history_w: tuple[float, ...] = ()
    events: tuple[DashboardEvent, ...] = ()
    # None means "no source" and the UI says so instead of inventing a value.
    price: PriceNow | None = None
    #: Published prices of the intervals from now on (day-ahead markets publish tomorrow's), for the outlook.
    price_outlook_per_mwh: tuple[float | None, ...] = ()
    cost_per_hour: float | None = None
    #: Why the configured price file gives no price (unreadable or invalid); None when it loaded or there is none.
    price_error: str | None = None
    #: The jobs waiting (PENDING and DEFERRED), all of them; None: no store to read them from.
    queue_length: int | None = None
    #: The jobs holding GPUs (STARTING and RUNNING), all of them; None: no store.
    jobs_running: int | None = None
    #: The jobs the panel shows (`JobLine`): empty while none was submitted; None: no store to read them from.
    jobs: tuple[JobLine, ...] | None = None
    #: The job holding each GPU, by node then index, from the running jobs' ranks read with `jobs` (jobs/holders.py,
    #: `gpus -o wide`'s JOB); None: no store to read them from, so unknown (never "free"): see `gpu_job`.
    gpu_jobs: GpuHolders | None = None
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The controller read is late: the header names it and keeps the data's age (None while it keeps up, or none).
    late_controller: LateController | None = None
    #: How many GPUs each node was last seen with, a node down now included: the header's total of GPUs.
    gpu_counts: dict[str, int] = field(default_factory=dict)
    #: factoryctl's files changed under this running dashboard (an upgrade): what to say, the header leading with it
    #: (`StaleCode`, stale_code.py); None while its code in memory is whole.
    code_changed: str | None = None

    def node(self, name: str) -> NodeSample | None:
        """The sample of one node, or None when the snapshot does not hold it."""
        for sample in self.nodes:
            if sample.node == name:
                return sample
        return None

    def gpu_job(self, node: str, index: int) -> GpuJob:
        """Which job holds GPU `index` of `node`: its id, none, or unknown (the store was not read) and why."""
        holders = self.gpu_jobs
        if holders is None or holders.error is not None:
            return GpuJob(None, holders.error if holders is not None else NO_JOB_STORE)
        return GpuJob(holders.job_id(node, index))


@dataclass(frozen=True)
class GpuHistory:
    """One GPU's recent values, oldest first, one point per sample (None where the driver gave nothing)."""

    index: int
    utilization_pct: tuple[float | None, ...] = ()
    power_w: tuple[float | None, ...] = ()
    temperature_c: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class NodeHistory:
    """Recent per-GPU history of one node, for the node screen's graphs."""

    node: str
    interval_s: float
    gpus: tuple[GpuHistory, ...] = ()
    #: The node's own events of the last hour, oldest first, asked for that node alone (the factory's newest events
    #: may hold none of it); None when the services give none (the node screen then picks the snapshot's).
    events: tuple[DashboardEvent, ...] | None = None

    def gpu(self, index: int) -> GpuHistory | None:
        """The history of GPU `index`, if any."""
        for history in self.gpus:
            if history.index == index:
                return history
        return None


class DashboardServices(Protocol):
    """What the dashboard needs from the factory. Every method may block: the app calls them from thread workers."""

    @property
    def factory_name(self) -> str:
        """The factory's name, for the title before the first snapshot arrives."""
        ...

    @property
    def interval_s(self) -> float:
        """How often a new snapshot is worth asking for."""
        ...

    def snapshot(self) -> FactorySnapshot:
        """The latest state of every node in view. Must return promptly even when a node is slow or down."""
        ...

    def node_history(self, node: str) -> NodeHistory:
        """Recent per-GPU history of one node."""
        ...

    def drain(self, node: str, reason: str) -> None:
        """Keep the scheduler off `node` (persisted through the store when there is one)."""
        ...

    def resume(self, node: str) -> None:
        """Let the scheduler use `node` again."""
        ...

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        """Set every GPU of `node` (or only those of `gpus`: a node with a lost GPU) to `watts`, clamped to each range.

        Returns one `{index, before_w, enforced_w, clamped}` per GPU; raises a `FactoryError` when the node cannot
        be reached.
        """
        ...

    def close(self) -> None:
        """Release sessions and threads (called when the app exits)."""
        ...


def open_services(config: FactoryConfig, target: str | None = None) -> DashboardServices:
    """The controller's store while a live controller holds its lock, else the dashboard's own embedded collector.

    The choice is revisited every few seconds (`AutoServices`), so a controller started or exiting while the
    dashboard is open takes over or hands back; a late one is said to be late, never replaced.
    """
    from factoryctl.live.services_auto import AutoServices

    return AutoServices(config, target)
