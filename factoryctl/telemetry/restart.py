"""What a restarted controller (or a cron sweep) takes back from its store, so it neither repeats nor loses what it knew.

Kept apart from the store writer (telemetry/writer.py), which starts from it, and shared with the standalone sweep
(`telemetry collect`, cli/telemetry.py), so both judge a node against the store by one rule: each node's newest
stored sample is the `before` its first new sample is compared with, and its stored state the one its first judged
state is compared with (`NodeHealth.stored`). One read of the store gives both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.health import NodeHealth


@dataclass
class StoredFleet:
    """Each node's newest stored sample and last recorded state, as the store held them at start."""

    samples: dict[str, NodeSample] = field(default_factory=dict)
    states: dict[str, NodeState] = field(default_factory=dict)


def stored_fleet(store: Store) -> StoredFleet:
    """What the store knows of every node, from one read (empty when the store cannot tell).

    The samples are the `before` of each node's first new one: an XID, a lost GPU or an ECC count already logged is
    not logged again, and a GPU that is still lost keeps the UUID and name it had (`carry_forward`), so its `gpu_lost`
    and `DCGM_FI_DEV_XID_ERRORS` series keep their identity across the restart. The states are what each node's first
    judged state is compared with: a node found unchanged logs no `node_up` or `node_down` (`NodeHealth.stored`).
    """
    try:
        latest = store.latest()
    except StoreError:
        return StoredFleet()
    return StoredFleet(
        samples={state.node: sample for state, sample in latest if sample is not None},
        states={state.node: state for state, _ in latest},
    )


def judge_against_stored(
    sample: NodeSample, stored: NodeState | None, interval_s: float
) -> tuple[NodeState, NodeState | None]:
    """`sample`'s node judged as a controller starting from `stored` judges it: (its state, the change to log or None).

    The judge is the controller's own (`NodeHealth`, started from the stored state): a sample is a node seen up, any
    other is its failure (`down_sample` in telemetry/poll.py judges those rows by the same judge). Found the same state
    for the same kind of reason, the node keeps its stored `since` and is no change; a node still down but failing
    another way is one, as is a node never stored.
    """
    health = NodeHealth(sample.node, interval_s, stored=stored)
    if sample.state == "up":
        change = health.seen(sample.time)
    else:
        change = health.failed(sample.time, sample.error or "agent", sample.message or "")
    state = NodeState(health.node, health.state, health.since, health.last_seen, health.error, health.message)
    return state, change
