"""What a caller that keeps its queue between passes hands each pass (`QueueIndex`), so no pass walks all of it.

Its own module because both halves of a pass read it: the loop in `core` (the queued shapes, the per-shape queues
of `shapequeue`) and the starvation guard in `starvation` (the oldest jobs, the queued GPU-seconds and walltimes). `core`
re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from factoryctl.scheduler.passdata import Candidate
from factoryctl.scheduler.shapequeue import ShapeQueue


class QueueIndex(NamedTuple):
    """What a caller that keeps its queue from pass to pass can hand a pass, so the pass need not walk it all.

    Without it the starvation guard walks the whole queue each pass to find the oldest jobs, the queued
    GPU-seconds and the floor's median walltime; the simulator keeps these up to date as jobs arrive and start instead. The live scheduler builds
    its queue afresh each pass and gives none. The index must describe exactly the queue given to `plan`, and
    every queued job must be hostable on the pass's nodes and carry no node constraint.

    Attributes:
        shapes: for each queued (nodes, GPUs per node), the shortest walltime queued with it. The pass then stops
            as soon as no queued job could start, instead of walking the rest of the queue.
        by_age: the queued jobs oldest first (`age_order`).
        by_id: the queued jobs by id.
        gpu_s: the queue's GPU-seconds, summed exactly as `gpu_seconds` does: its drain time's numerator.
        by_shape: optionally, the queued jobs of each shape in key order (`ShapeQueue`). Given only when the
            queue handed to `plan` is sorted by key and its keys are unique (the simulator's): once no job can
            take a reservation any more, the pass then tries just the jobs that might start instead of walking
            the rest of the queue.
        walltimes: optionally, the queued jobs' walltimes, sorted: the starving floor's median (without it the
            guard reads them from `by_age`).
    """

    shapes: Mapping[tuple[int, int], float]
    by_age: Sequence[Candidate]
    by_id: Mapping[str, Candidate]
    gpu_s: float
    by_shape: Mapping[tuple[int, int], ShapeQueue] | None = None
    walltimes: Sequence[float] | None = None
