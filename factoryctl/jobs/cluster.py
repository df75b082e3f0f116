"""The cluster as the scheduler sees it, from the inventory and what the store last knew of each node.

A node's GPU count is what its agent reported (the store's GPU table), else what factory.yaml says (`gpus`, or a
simulated node's count). A node the store has never heard from receives nothing: it is offered to the scheduler as
down when factory.yaml gives its GPU count (so a job's shape and its reason count it), else left out, and
`sched tick` says to collect telemetry first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from factoryctl.config import FactoryConfig
from factoryctl.model.jobs import SchedNode
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.nodes import node_healthy
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store


@dataclass(frozen=True)
class Cluster:
    """The scheduler's nodes, each node's GPU indexes, and the nodes left out because nothing is known of them."""

    nodes: tuple[SchedNode, ...]
    gpu_indexes: Mapping[str, tuple[int, ...]]
    unknown: tuple[str, ...]


def cluster_view(
    config: FactoryConfig, store: Store, stored: Sequence[tuple[NodeState, bool | NodeSample | None]] | None = None
) -> Cluster:
    """Every inventory node as a `SchedNode` (state, drain and health from the store: `stored`, else read now).

    `stored` is `store.node_health()`, each node's state and health (or `store.latest()`, its state and newest
    sample, judged here by `node_healthy`).
    """
    latest = {state.node: (state, s) for state, s in (store.node_health() if stored is None else stored)}
    drained = store.drained_nodes()
    seen_gpus = store.gpu_indexes(list(config.nodes))
    nodes: list[SchedNode] = []
    indexes: dict[str, tuple[int, ...]] = {}
    unknown: list[str] = []
    for name, spec in config.nodes.items():
        known = latest.get(name)
        gpus = tuple(seen_gpus.get(name, ())) or tuple(range(spec.gpus or 0))
        if known is None or not gpus:
            unknown.append(name)
            if spec.gpus:  # offered as down: the scheduler's shapes and reasons count it, it places nothing there
                nodes.append(
                    SchedNode(name, spec.gpus, rack=spec.rack, labels=dict(spec.labels), state="down", heard=False)
                )
            continue
        state, health = known
        indexes[name] = gpus
        healthy = health if isinstance(health, bool) else node_healthy(state, health)
        nodes.append(
            SchedNode(
                name=name,
                gpus=len(gpus),
                rack=spec.rack,
                labels=dict(spec.labels),
                state=state.state,
                drained=name in drained,
                healthy=healthy,
            )
        )
    return Cluster(tuple(nodes), indexes, tuple(unknown))
