"""Nodes a pass found silent are kept out of placements for a minute, so gangs are not launched there pass after pass.

A node that did not answer a pass (checking its ranks, launching, its agent not starting) may be down while the
store still says up (cron runs `telemetry collect` every few minutes; the controller needs a few intervals to judge
it): placed again at once, every pass would launch the gang's other ranks, fail on that node, kill them and requeue.
Each silent node is remembered (meta `scheduler.silent_nodes`, node -> until) and offered to the scheduler as down
until then; a node that answers again is offered as usual once its minute is over.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from factoryctl.jobs.cluster import Cluster
from factoryctl.store.jobs import SILENT_NODES_KEY
from factoryctl.store.sqlite import Store

#: How long a node that did not answer a pass is kept out of placements.
SILENT_HOLD_S = 60.0


def _remembered(store: Store) -> dict[str, float]:
    found = store.scheduler_value(SILENT_NODES_KEY, {})
    return {str(k): float(v) for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def silent_nodes(store: Store, now: float) -> set[str]:
    """The nodes kept out of placements at `now`."""
    return {node for node, until in _remembered(store).items() if until > now}


def remember_silent(store: Store, silent: Collection[str], now: float) -> None:
    """Keep `silent` out for SILENT_HOLD_S from `now` (the expired entries forgotten)."""
    kept = {node: until for node, until in _remembered(store).items() if until > now}
    kept.update({node: now + SILENT_HOLD_S for node in silent})
    if kept or _remembered(store):
        store.set_scheduler_value(SILENT_NODES_KEY, kept)


def held_down(cluster: Cluster, silent: Collection[str]) -> Cluster:
    """`cluster` with each silent node offered as down (it receives nothing; its running gangs keep their GPUs)."""
    if not silent:
        return cluster
    nodes = tuple(replace(n, state="down") if n.name in silent else n for n in cluster.nodes)
    return replace(cluster, nodes=nodes)
