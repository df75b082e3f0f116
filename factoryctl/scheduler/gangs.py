"""Arithmetic on gangs that the pass, the simulator and the starvation guard share.

Small and exact on purpose: how many GPUs an uneven gang really holds on each node, and the queue's GPU-seconds
summed so that a running total and a fresh sum agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import split_gang


def settle_gang(fm: FreeMap, num_gpus: int, per_node: int, chosen: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The GPUs a gang placed on `chosen` (holding `per_node` on each) runs on, giving back what it does not use.

    An uneven gang (11 GPUs as 2 x 6) is placed holding the same count on every node and runs on 6 + 5
    (`split_gang`): the spare GPU is free again at once, for the rest of the pass and for the live scheduler,
    which sees a running job's allocation.
    """
    if num_gpus == per_node * len(chosen):
        return tuple((index, per_node) for index in chosen)
    held = tuple(zip(chosen, split_gang(num_gpus, len(chosen)), strict=True))
    for index, gpus in held:
        if gpus < per_node:
            fm.give(index, per_node - gpus)
    return held


def gpu_seconds(jobs: Iterable[tuple[int, float]]) -> float:
    """The sum of GPUs x walltime over `jobs`, computed exactly and rounded once.

    Exact so that it does not depend on the order of the terms: the simulator keeps the same sum as a running
    total from pass to pass (`QueueIndex.gpu_s`), and a float total would drift from a fresh sum in the last bits,
    enough to move the starving threshold past a job's submission time. Whole-second walltimes stay in integers.
    """
    whole = 0
    parts = Fraction(0)
    for gpus, walltime in jobs:
        if isinstance(walltime, int) or walltime.is_integer():
            whole += gpus * int(walltime)
        else:
            parts += gpus * Fraction(walltime)
    return float(whole + parts)
