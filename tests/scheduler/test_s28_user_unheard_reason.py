"""A job waiting for nodes the store has never heard from says so, and how they get heard from.

A fresh factory's first job (`init`, `jobs submit --gpus 8 -- true`, `sched tick`) waited with `waiting for nodes
that are down, drained or unhealthy` while `nodes` showed its node up: the pass offers a node with no sample yet as
down, and the reason could not tell it from a broken one. `describe_unplaceable` now takes those nodes' names; the
pass hands them over once SchedNode carries whether the store heard from a node (see the session 28 report).
"""

from __future__ import annotations

from factoryctl.scheduler.passdata import Candidate
from factoryctl.scheduler.reasons import describe_unplaceable


def _job(nodes: int, gpus: int) -> Candidate:
    return Candidate("j1", nodes * gpus, nodes, gpus, 100.0, 0.0, (0.0, 0.0, 0))


def test_nodes_never_heard_from_are_named_with_how_to_sample_them() -> None:
    assert describe_unplaceable(_job(1, 8), "", 1, 1, ("ws",)) == (
        "waiting for nodes the store has never heard from (ws: `factoryctl telemetry collect --once` or"
        " `factoryctl controller run` samples them): needs 1 node with 8 free GPUs"
    )


def test_some_never_heard_from_beside_broken_ones_are_named_among_them() -> None:
    unheard = tuple(f"n{i}" for i in range(1, 7))
    text = describe_unplaceable(_job(2, 8), "labels pool=train", 9, 8, unheard)
    assert text == (
        "waiting for nodes that are down, drained, unhealthy or never heard from (n1,n2,n3,n4,... (6 nodes):"
        " `factoryctl telemetry collect --once` or `factoryctl controller run` samples them): needs 2 nodes with"
        " 8 free GPUs among the nodes of its labels pool=train"
    )
    assert describe_unplaceable(_job(2, 8), "", 9, 8, ()) == (
        "waiting for nodes that are down, drained or unhealthy: needs 2 nodes with 8 free GPUs"
    )
