"""`StoreServices`: the dashboard on the controller's store, when a live controller already watches every node.

Reads what the controller wrote (latest samples and judged node states, drains, events, history) through one store
connection; opens no agent session to read. A power cap is one audited request through `factoryctl.power.limits`
(a short session to that node only), exactly what `factoryctl power set --clamp` does. Imports no Textual.

A controller that falls behind still holds its lock, so its store is still what is shown, but each row is judged by
its age (`stale_for`, as `nodes list` judges it): one not refreshed for longer than a node may be silent is never
shown as live data. Why it aged decides what it shows: while the controller holding the lock is late (it stores
nothing), every old row is `stale` (its last values, the reason said), since the controller stopped, not the nodes,
and a stopped controller must not read as a fleet outage; while it writes, a row it no longer refreshes is `down`.
A row a just-started controller has not judged yet shows as `connecting` for its first 30 s. `controller_view` says
who holds the lock, since when, when it started and when it last wrote, for `AutoServices`. A controller that stores
no sample because no node of its is up is not late while it writes its figures (`controller status` reads them):
with 1,984 nodes down, every dashboard opened ran a collector of its own for 30 s, then called it late. The store file is followed
(`FollowedStore`): a drain never goes into a file deleted or replaced under the dashboard.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, UsageError
from factoryctl.live.grid import GridPrice
from factoryctl.live.history import RecentHistory
from factoryctl.live.jobs_feed import JobsFeed
from factoryctl.live.services import DashboardEvent, FactorySnapshot, GpuHistory, NodeHistory
from factoryctl.live.services_base import (
    ConfiguredServices,
    FollowedStore,
    assemble_snapshot,
    cap_reason,
    node_events,
    recent_events,
    stored_jobs,
)
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import STATS_EVERY_S, STATS_KEY
from factoryctl.store.who import login_name
from factoryctl.telemetry.latest import stale_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from factoryctl.store.rows import NodeState
    from factoryctl.store.sqlite import Store

#: Per-GPU history shown on the node screen.
NODE_HISTORY_S = 600.0
#: Factory power loaded from the store when the dashboard opens, at this resolution.
BACKFILL_STEP_S = 60.0


#: A controller that stored no sample for this many intervals is late (as `nodes list` stops trusting its store).
LATE_AFTER_INTERVALS = 3
#: A node's state while its row is old because the controller is late: not known, neither up nor down.
STALE = "stale"


@dataclass(frozen=True)
class ControllerView:
    """Who holds the store's lock, and when it last stored a sample: what the dashboard's choice of source rests on."""

    #: The live process holding the lock (0: its lock file names none); None: no controller holds the lock.
    pid: int | None
    #: When it last stored a sample, by the controller's clock; None: never, or the store cannot be read.
    stored_at: float | None
    #: When it started (its `controller_start` event); None: no holder, or it stored no such event.
    started_at: float | None = None
    #: When it took the lock (the lock file's time, which it writes then); None: no holder, or unreadable.
    locked_at: float | None = None
    #: When it last wrote its figures, and how many nodes they said were up (None: none of its own found).
    figures_at: float | None = None
    figures_up: int | None = None

    def late_for(self, now: float, interval_s: float) -> float | None:
        """Seconds since the lock holder's last write when over three intervals (inf: none yet); None if not late.

        Not late either while it writes its figures, and those written since its last sample say no node is up: it
        has no sample to store. Figures older than its last sample say nothing of now (they lag up to 10 s).
        """
        if self.pid is None:
            return None
        age = math.inf if self.stored_at is None else now - self.stored_at
        if age <= LATE_AFTER_INTERVALS * interval_s:
            return None
        written = self.figures_at
        fresh = written is not None and now - written <= 2 * STATS_EVERY_S and written > (self.stored_at or 0.0)
        return None if fresh and self.figures_up == 0 else age


def controller_view(config: FactoryConfig) -> ControllerView:
    """The controller holding the lock beside the store, if a live process does, when it started and last wrote."""
    from factoryctl.store.lock import controller_pid, lock_path
    from factoryctl.store.sqlite import Store, StoreError

    try:
        pid = controller_pid(config.state_dir)
        locked_at = lock_path(config.state_dir).stat().st_mtime if pid else None
    except OSError:  # a state_dir this user cannot search: no lock anyone can see
        pid = locked_at = None
    if pid is None or not config.store_path.exists():
        return ControllerView(pid, None)
    try:
        store = Store(config.store_path, readonly=True)
    except StoreError:
        return ControllerView(pid, None)
    try:
        return view_of(store, pid, locked_at)
    except StoreError:
        return ControllerView(pid, None, locked_at=locked_at)
    finally:
        store.close()


def view_of(store: Store, pid: int, locked_at: float | None) -> ControllerView:
    """What `store` says of controller `pid`, which took its lock at `locked_at`; raises `StoreError`."""
    figures_at = figures_up = None
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):  # none, not its own, not ours
        figures = json.loads(store.get_meta(STATS_KEY) or "null")
        if figures.get("pid") == pid and isinstance(figures.get("up"), int):
            figures_at, figures_up = float(figures["written_at"]), int(figures["up"])
    return ControllerView(
        pid,
        store.samples_stored_at(),  # not the samples' own times: a node's clock ahead would fake freshness
        _started_at(store, pid, locked_at),
        locked_at,
        figures_at,
        figures_up,
    )


def _started_at(store: Store, pid: int, locked_at: float | None) -> float | None:
    """When controller `pid` started, by the `controller_start` event it stores first (None: none found).

    A controller stores that event right after taking the lock, before any sample; the lock file's time, which it
    rewrote then, bounds the search. A process holding the lock that stored none is read as before: at once.
    """
    if locked_at is None:
        return None
    said = f"controller {pid} started"
    found = store.events(locked_at - 60, None, limit=10, kind="controller_start")
    return max((e.time for e in found if e.message.startswith(said)), default=None)


def judged_since(state: NodeState | None, started_at: float | None) -> bool:
    """Whether a node's row was judged by the controller that started at `started_at`, not left by another.

    A starting controller records each node at its first sample or failure (`NodeHealth`), with that time, and a
    node up has a sample newer than the lock; until then the row is its predecessor's (aging, or `down` as it
    stopped) or missing. No slack: a predecessor wrote everything before it let go of the lock.
    """
    if state is None:
        return False
    if started_at is None or state.since >= started_at:
        return True
    return state.state != "down" and state.last_seen is not None and state.last_seen >= started_at


def unjudged_nodes(config: FactoryConfig, names: Sequence[str], started_at: float | None) -> list[str]:
    """The nodes of `names` the controller that started at `started_at` has not judged yet (all if unreadable)."""
    from factoryctl.store.sqlite import Store, StoreError

    try:
        store = Store(config.store_path, readonly=True)
    except StoreError:
        return list(names)
    try:
        rows = {state.node: state for state, _ in store.latest()}
    except StoreError:
        return list(names)
    finally:
        store.close()
    return [name for name in names if not judged_since(rows.get(name), started_at)]


def controller_is_live(config: FactoryConfig) -> bool:
    """Whether a controller holds the lock and stored a sample within three intervals (by when it stored it).

    Its samples alone: figures saying no node is up (`late_for`) are what a controller that just started writes too.
    """
    view = replace(controller_view(config), figures_at=None)
    return view.pid is not None and view.late_for(time.time(), config.interval_s) is None


class StoreServices(ConfiguredServices):
    """`DashboardServices` over the store a live controller writes."""

    def __init__(self, config: FactoryConfig, target: str | None = None, cap_timeout_s: float = 15.0) -> None:
        self.config = config
        self.specs = config.resolve_target(target)
        self.names = [spec.name for spec in self.specs]
        self.cap_timeout_s = cap_timeout_s
        self.history = RecentHistory(config.interval_s)
        self.grid = GridPrice(config)
        self.writable = False
        #: While the controller started less than `startup_grace_s` ago (`ControllerView.started_at`, set by
        #: `AutoServices`), a row it has not judged yet is `connecting`, not its predecessor's (every node `down`).
        self.controller_started_at: float | None = None
        self.startup_grace_s = 30.0
        #: Said in the events panel: the store file was deleted or replaced under this dashboard (`FollowedStore`).
        self._moved: list[DashboardEvent] = []
        self._file = FollowedStore(config.store_path, self._open_writable, self._store_moved)
        self._backfilled = False
        self._user = login_name()
        self._jobs = JobsFeed()

    def _open_writable(self) -> Store:
        store, self.writable = _open(self.config)
        return store

    def _store_moved(self, sentence: str) -> None:
        self._moved.append(DashboardEvent(time.time(), None, "store", sentence, "warning"))

    @property
    def _store(self) -> Store:
        """The store at the configured path now (a deleted or replaced file is left for the one there)."""
        return self._file.get()

    def close(self) -> None:
        """Close the store connection."""
        self._file.close()

    def _latest(self, now: float) -> tuple[tuple[NodeSample, ...], dict[str, int]]:
        """Each node as the controller judged it (by its row's age), and how many GPUs its last stored sample had."""
        latest = {state.node: (state, sample) for state, sample in self._store.latest()}
        out: list[NodeSample] = []
        gpu_counts = {name: len(found[1].gpus) for name, found in latest.items() if found[1] is not None}
        started = self.controller_started_at
        starting = started is not None and now - started < self.startup_grace_s

        @functools.cache
        def late() -> bool:  # asked only when a row is old: a lock and a store read, once per snapshot at most
            return self._controller_late(now)

        for name in self.names:
            state, sample = latest.get(name, (None, None))
            if starting and not judged_since(state, started):  # its predecessor's row, or none: not a verdict
                message = f"the controller (started {now - (started or now):.0f} s ago) has not reported it yet."
                out.append(NodeSample(node=name, time=now, state="connecting", message=message))
                continue
            stale = stale_for(state, now, self.interval_s) if state is not None else None
            if state is not None and stale is not None and sample is not None and late():
                message = f"the controller is late: it stored no sample from it for {stale:.0f} s (its last values)."
                out.append(replace(sample, state=STALE, error=None, message=message))
                continue
            if state is not None and stale is not None:  # the controller no longer watches it
                message = f"the controller has stored no sample from it for {stale:.0f} s."
                state = replace(state, state="down", error="timeout", message=message)
            said = state.message.removeprefix(f"{name}: ") if state and state.message else None  # an older controller's
            if state is not None and sample is not None and state.state != "down":
                out.append(replace(sample, state=state.state, error=state.error, message=said))
                continue
            kind = (state.error if state else None) or "agent"
            message = said or "the controller has not reached it yet."
            seen = state.last_seen if state and state.last_seen else now
            out.append(NodeSample(node=name, time=seen, state="down", error=kind, message=message))
        return tuple(out), gpu_counts

    def _controller_late(self, now: float) -> bool:
        """Whether a live process holds the lock and has stored no sample for `LATE_AFTER_INTERVALS` intervals."""
        from factoryctl.store.lock import controller_pid

        try:
            holder = controller_pid(self.config.state_dir)
        except OSError:
            holder = None
        if holder is None:  # no controller: a row it left is a node nobody watches, down as `nodes list` says
            return False
        return view_of(self._store, holder, None).late_for(now, self.interval_s) is not None

    def _backfill(self, now: float) -> None:
        """Load the last hour of factory power from the store's history (minute buckets)."""
        self._backfilled = True
        series = self._store.history(self.names, "power_w", now - 3600, now, step=BACKFILL_STEP_S)
        per_bucket: dict[float, float] = defaultdict(float)
        for one in series:
            for point in one.points:
                if point.value is not None:
                    per_bucket[point.time] += point.value
        repeat = max(1, round(BACKFILL_STEP_S / self.interval_s))
        for bucket in sorted(per_bucket):
            for _ in range(repeat):
                self.history.record_factory(per_bucket[bucket])

    def snapshot(self) -> FactorySnapshot:
        """The controller's view of every node in the target."""
        now = time.time()
        if not self._backfilled:
            with contextlib.suppress(FactoryError):
                self._backfill(now)
        nodes, gpu_counts = self._latest(now)
        events, cut_at = recent_events(self._store, now, self.names)
        return assemble_snapshot(
            self.config,
            self.specs,
            now,
            nodes,
            frozenset(n for n in self._store.drained_nodes() if n in self.names),
            (*events, *self._moved),
            self.history,
            self.grid,
            gpu_counts,
            cut_at,
            stored_jobs(self._jobs, self._store, now),
        )

    def node_history(self, node: str) -> NodeHistory:
        """The node's per-GPU utilization, power and temperature over the last ten minutes, and its events, stored."""
        now = time.time()
        metrics: dict[str, dict[int, tuple[float | None, ...]]] = {}
        for metric in ("utilization_pct", "power_w", "temperature_c"):
            series = self._store.history([node], metric, now - NODE_HISTORY_S, now)
            metrics[metric] = {s.gpu: tuple(p.value for p in s.points) for s in series}
        indexes = sorted(set().union(*(m.keys() for m in metrics.values())))
        return NodeHistory(
            node,
            self.interval_s,
            tuple(
                GpuHistory(
                    i,
                    metrics["utilization_pct"].get(i, ()),
                    metrics["power_w"].get(i, ()),
                    metrics["temperature_c"].get(i, ()),
                )
                for i in indexes
            ),
            tuple(node_events(self._store, now, node)),
        )

    def _check(self, node: str) -> None:
        if node not in self.names:
            raise UsageError(f"{node} is not watched by this dashboard.", None)
        if not self.writable:
            raise FactoryError(
                f"this user cannot write the store at {self.config.store_path}: nothing was changed.",
                "run the dashboard as the controller's user, or use the CLI with sudo (`factoryctl nodes drain`).",
            )

    def drain(self, node: str, reason: str) -> None:
        """Drain through the store (the controller's scheduler reads the same flag), on a connection of its own.

        Its own (`FollowedStore.for_writing`): the snapshot's reads never wait behind a write waiting for the lock.
        """
        with self._file.for_writing() as store:  # the file at the path now: whether it may be written is known
            self._check(node)
            store.set_drained([node], True, reason, self._user)

    def resume(self, node: str) -> None:
        """Resume through the store, on a connection of its own (as `drain`)."""
        with self._file.for_writing() as store:
            self._check(node)
            store.set_drained([node], False, None, self._user)

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        """One clamped, audited request to the node (its GPUs `gpus`, or all), as `power set --clamp` makes it."""
        from factoryctl.power.limits import apply_limit

        self._check(node)
        changes, errors = apply_limit(
            self.config,
            [self.config.nodes[node]],
            gpus,
            watts,
            clamp=True,
            timeout=self.cap_timeout_s,
            reason=cap_reason(watts),
        )
        if errors:
            raise errors[0]
        return [
            {"index": c.gpu, "before_w": c.before_w, "enforced_w": c.enforced_w, "clamped": c.clamped} for c in changes
        ]


def _open(config: FactoryConfig) -> tuple[Store, bool]:
    """The store read-write, or read-only when this user may not write it (a root controller's store)."""
    from factoryctl.store.sqlite import Store, StoreError, open_store

    try:
        return open_store(config.store_path), True
    except StoreError:
        return Store(config.store_path, readonly=True), False
