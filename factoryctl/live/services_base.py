"""What every `DashboardServices` implementation shares, so the store-backed and the polled one stay alike.

Both answer the factory's name and interval from the config, record factory power at most once an interval, price
it, fill the same `FactorySnapshot` fields, and follow the store file (`FollowedStore`); only where nodes, drains and
events come from differs. Imports no Textual.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from factoryctl.errors import FactoryError
from factoryctl.live.event_folding import fold_state_events
from factoryctl.live.services import DashboardEvent, FactorySnapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from factoryctl.config import FactoryConfig
    from factoryctl.live.grid import GridPrice
    from factoryctl.live.history import RecentHistory
    from factoryctl.live.jobs_feed import JobsFeed, JobsRead
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import Event
    from factoryctl.store.sqlite import Store


#: States whose rows say nothing of the node now: not answered yet, or a late controller's old row.
NOT_NOW_STATES = ("connecting", "stale")
#: The events panel shows the events of the last hour, at most `EVENTS_SHOWN` of them (the newest) besides the state
#: changes of a burst of every node (`STATE_EVENTS_PER_NODE` each: degraded, then down), so a folded line counts them
#: all: read 200 at a time, a fleet of 1,984 going down was "200 nodes down" (`events_kept`).
EVENTS_WINDOW_S = 3600.0
EVENTS_SHOWN = 200
STATE_EVENTS_PER_NODE = 2
#: The alarms of a GPU or node kept in the panel's events even when more than `EVENTS_SHOWN` newer events came (a
#: controller's start on 200 nodes stores 200 `node_up`): the newest `ALARMS_KEPT` of these kinds.
ALARM_KINDS = ("gpu_lost", "xid", "ecc", "node_down")
ALARMS_KEPT = 50


class ConfiguredServices:
    """The `factory_name` and `interval_s` of `DashboardServices`, both read from `self.config`."""

    config: FactoryConfig

    @property
    def factory_name(self) -> str:
        """The factory's name."""
        return self.config.name

    @property
    def interval_s(self) -> float:
        """The factory's sampling interval."""
        return self.config.interval_s


def assemble_snapshot(
    config: FactoryConfig,
    specs: Iterable[NodeSpec],
    now: float,
    nodes: tuple[NodeSample, ...],
    drained: frozenset[str],
    events: tuple[DashboardEvent, ...],
    history: RecentHistory,
    grid: GridPrice,
    gpu_counts: dict[str, int] | None = None,
    events_cut_at: float | None = None,
    jobs: JobsRead | None = None,
) -> FactorySnapshot:
    """The snapshot of `nodes` at `now`; records the factory's power in `history` once an interval.

    Only a refresh where some node reported its power, and none is still connecting or stale, is recorded: a refresh
    with nodes still connecting (the first, or a controller starting or handing back) has no or partial data, and one
    with stale rows (a late controller's) only old data, and recording it would put a false dip, or a flat line of old
    values, in the power graph and the hour's mean energy. `gpu_counts` is how many GPUs each node was last seen with
    (a node down now has none in its sample). `events_cut_at`: events older than this were left out of `events` (a
    limit), so a folded line near it counts `N+` (`fold_state_events`). `jobs`: the store's, with the job holding each
    GPU (None: no store, or it could not be read: which job holds a GPU is then unknown, never "free").
    """
    reported = [n.power_w for n in nodes if n.state not in ("down", "connecting") and n.power_w is not None]
    power_w = sum(reported)
    if reported and not any(n.state in NOT_NOW_STATES for n in nodes):
        history.record_factory_at(now, power_w)
    price, cost_per_hour = grid.now(now, power_w / 1000)
    return FactorySnapshot(
        factory=config.name,
        time=now,
        nodes=nodes,
        racks={spec.name: spec.rack for spec in specs},
        drained=drained,
        budget_kw=config.settings.power.facility_budget_kw,
        interval_s=config.interval_s,
        power_history_w=history.factory_series(),
        events=fold_state_events(events, events_cut_at),
        groups=dict(config.groups),
        price=price,
        price_outlook_per_mwh=grid.outlook(now),
        cost_per_hour=cost_per_hour,
        price_error=grid.error,
        gpu_counts=gpu_counts or {},
        queue_length=jobs.waiting if jobs is not None else None,
        jobs_running=jobs.running if jobs is not None else None,
        jobs=jobs.lines if jobs is not None else None,
        gpu_jobs=jobs.holders if jobs is not None else None,
    )


def stored_jobs(feed: JobsFeed, store: Store, now: float) -> JobsRead | None:
    """The jobs of `store` for the panel (`JobsFeed.read`); None when they cannot be read (the rest of it still shows)."""
    with contextlib.suppress(FactoryError):
        return feed.read(store, now)
    return None


def dashboard_event(event: Event) -> DashboardEvent:
    """A stored or freshly judged event as the events panel shows it."""
    return DashboardEvent(event.time, event.node, event.kind, event.message, event.severity)


def events_kept(nodes: int) -> int:
    """How many of the newest events the panel reads or keeps for `nodes` nodes: enough to fold a burst of them all."""
    return EVENTS_SHOWN + STATE_EVENTS_PER_NODE * nodes


def recent_events(store: Store, now: float, names: Sequence[str]) -> tuple[list[DashboardEvent], float | None]:
    """The stored events of `names` for the events panel, oldest first, and when they were cut (None: not cut).

    The newest of the hour (`events_kept` of them), and its alarms: those (`ALARM_KINDS`) are asked for apart, so a
    burst of newer events (a controller's start) never pushes them out. When the limit was reached, the time of the
    oldest read is where the hour's events were cut (`fold_state_events` says `N+` of a burst that began near it).
    """
    since = now - EVENTS_WINDOW_S
    limit = events_kept(len(names))
    newest = store.events(since, names, limit=limit)
    cut_at = newest[0].time if len(newest) >= limit else None
    have = {event.id for event in newest}
    alarms = [e for e in store.events(since, names, limit=ALARMS_KEPT, kind=ALARM_KINDS) if e.id not in have]
    return [dashboard_event(e) for e in sorted([*newest, *alarms], key=lambda e: (e.time, e.id or 0))], cut_at


def node_events(store: Store, now: float, node: str) -> list[DashboardEvent]:
    """The stored events of one node in the last hour (the newest `EVENTS_SHOWN`), oldest first: its screen's.

    Asked for that node alone: the factory's newest events may hold none of it (200 other nodes came up since).
    """
    return [dashboard_event(e) for e in store.events(now - EVENTS_WINDOW_S, [node], limit=EVENTS_SHOWN)]


def cap_reason(watts: float) -> str:
    """The audit reason of a power cap set from the dashboard, whichever services set it."""
    return f"dashboard: {watts:g} W requested"


class FollowedStore:
    """The store at a path, reopened when the file there is no longer the one open (deleted, or replaced).

    SQLite keeps using the inode it opened, so a store deleted or replaced under the dashboard would take its drains
    into a file nobody else reads. Every use checks the path first (one `stat`) and moves to the file there, opened by
    `opener` (which creates a deleted store again where it may); `on_moved(sentence)` tells the user once. Connections
    replaced stay open until `close`: another thread may be using one.
    """

    def __init__(self, path: Path, opener: Callable[[], Store], on_moved: Callable[[str], None]) -> None:
        self.path = path
        self._opener = opener
        self._on_moved = on_moved
        self._lock = threading.Lock()
        self._store = opener()
        self._replaced: list[Store] = []

    def get(self) -> Store:
        """The store at the path now; raises `StoreError` when the file there cannot be opened."""
        with self._lock:
            gone = self._store.replaced()
            if gone is None:
                return self._store
            fresh = self._opener()
            self._replaced.append(self._store)
            self._store = fresh
        self._on_moved(
            f"the store {self.path} was {gone} under this dashboard: it now reads and writes the file there "
            "(the drains and events of the old file are lost: drain those nodes again)."
        )
        return fresh

    @contextlib.contextmanager
    def for_writing(self) -> Iterator[Store]:
        """A connection of its own for one action's write (a drain), closed after it.

        Calls on one connection take turns, and a write waits for a store another process holds locked (up to the
        store's busy timeout, 10 s) in its turn: on the connection the snapshot reads, the display would freeze that
        long. The file is the one at the path now (`get` follows a deleted or replaced one, and says so).
        """
        self.get()
        store = self._opener()
        try:
            yield store
        finally:
            store.close()

    def close(self) -> None:
        """Close every connection opened."""
        with self._lock:
            stores, self._replaced = [self._store, *self._replaced], []
        for store in stores:
            with contextlib.suppress(Exception):
                store.close()
