"""What each rank of a gang is given: its GPUs on its node and the environment torchrun-style launchers read.

One launcher process per node (DESIGN.md, Job fields): `WORLD_SIZE` = `NNODES` and `RANK` = `NODE_RANK`, with
`NPROC_PER_NODE` the GPUs it has there, so `torchrun --nnodes $NNODES --node_rank $NODE_RANK --nproc_per_node
$NPROC_PER_NODE --master_addr $MASTER_ADDR --master_port $MASTER_PORT train.py` works unchanged. The port is derived
from the job id, so a restarted gang meets at the same address and two jobs rarely share one.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping, Sequence

from factoryctl.jobs.holders import holders_of
from factoryctl.model.jobs import GpuAllocation, Job

#: The first port MASTER_PORT is taken from (torch.distributed's default), and how many ports it spreads over.
MASTER_PORT_BASE = 29500
MASTER_PORT_SPAN = 1000


def master_port(job_id: str, taken: Collection[int] = ()) -> int:
    """The port rank 0 listens on for the gang's rendezvous, free among the other launches on its node.

    The job's own port (from its id, so a restart usually keeps it) unless another launch on the same node holds
    it, then the next free one of the MASTER_PORT_SPAN ports. Two jobs whose rank 0 share a node with one port
    would both fail ("address already in use"), and again after every restart while the other runs: the port of
    each launch is chosen against its node's others.
    """
    first = zlib.crc32(job_id.encode()) % MASTER_PORT_SPAN
    for step in range(MASTER_PORT_SPAN):
        port = MASTER_PORT_BASE + (first + step) % MASTER_PORT_SPAN
        if port not in taken:
            return port
    return MASTER_PORT_BASE + first  # a thousand launches on one node: share one, as before


def ports_taken(jobs: Sequence[Job]) -> dict[str, set[int]]:
    """The rendezvous ports the active jobs' launches hold, by their rank 0's node."""
    taken: dict[str, set[int]] = {}
    for job in jobs:
        if job.state.active and job.ranks and job.master_port is not None:
            taken.setdefault(job.ranks[0].node, set()).add(job.master_port)
    return taken


def free_gpus(indexes: Sequence[int], busy: Collection[int], count: int) -> tuple[int, ...] | None:
    """The lowest `count` GPU indexes of a node not held by another job; None when fewer are free."""
    free = [i for i in indexes if i not in busy]
    return tuple(free[:count]) if len(free) >= count else None


def rank_environment(
    job: Job, allocation: Sequence[GpuAllocation], rank: int, gpus: Sequence[int], master_addr: str
) -> dict[str, str]:
    """The environment of `rank` (its node's index in `allocation`): the user's `--env` first, ours over it."""
    env = dict(job.spec.env)
    env.update(
        {
            "FACTORY_JOB_ID": job.id,
            "FACTORY_RESTART_COUNT": str(job.restarts),
            "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(job.master_port if job.master_port is not None else master_port(job.id)),
            "NNODES": str(len(allocation)),
            "NODE_RANK": str(rank),
            "WORLD_SIZE": str(len(allocation)),
            "RANK": str(rank),
            "NPROC_PER_NODE": str(allocation[rank].gpus),
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus),
        }
    )
    return env


def busy_gpus(jobs: Sequence[Job]) -> dict[str, set[int]]:
    """The GPU indexes each node's active jobs hold, by node (`holders.holders_of`: which job holds each)."""
    return {node: set(held) for node, held in holders_of(jobs).by_node.items()}


def choose_gpus(
    allocation: Sequence[GpuAllocation], indexes: Mapping[str, Sequence[int]], busy: Mapping[str, Collection[int]]
) -> list[tuple[int, ...]] | None:
    """Each allocated node's GPU indexes for a gang, in rank order; None when a node has fewer free than it needs."""
    chosen = []
    for a in allocation:
        gpus = free_gpus(indexes.get(a.node, ()), busy.get(a.node, ()), a.gpus)
        if gpus is None:
            return None
        chosen.append(gpus)
    return chosen


def launch_id(job: Job) -> str:
    """The name a node knows this launch of the job by: the job id and the launch's start (milliseconds, hex).

    A gang requeued and launched again gets new rank records beside the old ones (whose exit codes and logs stay
    readable on the node) instead of the node answering the first launch's record of a finished rank.
    """
    started = job.started_at if job.started_at is not None else 0.0
    return f"{job.id}.{round(started * 1000):x}"
