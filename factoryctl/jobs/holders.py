"""Which job holds each GPU, from the store's job records alone: `gpus`' JOB column and `nodes`' USED and FREE.

Slurm users see which job holds a node's GPUs (`squeue -w`, `sinfo`'s allocated GRES), nvidia-smi users see
processes. The scheduler knows it without asking a node: each rank of a STARTING or RUNNING job holds its node's GPU
indexes (`Rank.gpus`), the GPUs a scheduling pass counts as busy (`rank_env.busy_gpus`). So listings read them from
the store and add no node call. A store that cannot be read leaves them unknown, with why, never "free".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from factoryctl.model.jobs import Job, JobState


@dataclass(frozen=True)
class GpuHolders:
    """The job holding each GPU, by node then GPU index; `error` says why it is unknown (the store's error)."""

    by_node: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    error: str | None = None

    def job_id(self, node: str, index: int) -> str | None:
        """The id of the job holding GPU `index` of `node`; None when none does, or when unknown (`error`)."""
        return self.by_node.get(node, {}).get(index)

    def held(self, node: str) -> frozenset[int] | None:
        """The GPU indexes of `node` jobs hold; None when unknown."""
        if self.error is not None:
            return None
        return frozenset(self.by_node.get(node, ()))


def holders_of(jobs: Iterable[Job]) -> GpuHolders:
    """The GPUs the active (STARTING, RUNNING) jobs' ranks hold; the first job in `jobs` wins a GPU two claim."""
    by_node: dict[str, dict[int, str]] = {}
    for job in jobs:
        if job.state.active:
            for rank in job.ranks:
                node = by_node.setdefault(rank.node, {})
                for index in rank.gpus:
                    node.setdefault(index, job.id)
    return GpuHolders(by_node)


def read_holders(store_path: Path) -> GpuHolders:
    """The holders as the store at `store_path` records them (read-only); none when no store exists yet.

    A store that cannot be read (damaged, locked past its wait) gives an unknown `GpuHolders` whose `error` is the
    store's sentence, for the caller to say.
    """
    if not store_path.exists():  # no job was ever submitted here
        return GpuHolders()
    from factoryctl.store.sqlite import Store, StoreError

    try:
        store = Store(store_path, readonly=True)
        try:
            return holders_of(store.jobs({s for s in JobState if s.active}))
        finally:
            store.close()
    except StoreError as exc:
        return GpuHolders(error=exc.message)
