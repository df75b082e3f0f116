"""The refusals of an explicit power-limit request before any node changes: the value, the GPUs, the ranges.

A request is all-or-nothing, as `nvidia-smi -pl` is: one addressed GPU that cannot take the value refuses it (exit 2)
and nothing changes. On a mixed fleet (H100s taking 200-700 W, A100s 100-400 W) the refusal says how many GPUs are
out of range and which ranges they have, and the hint gives the value range every addressed GPU takes (here
200-400 W), not the first GPU's, whose range the next try may fall outside of on another model; when the ranges do
not overlap it says so and the way out: each group on its own, or `--clamp`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from factoryctl.errors import NodeError, UsageError
from factoryctl.model.folding import fold_indexes, fold_nodes
from factoryctl.model.telemetry import NodeSample
from factoryctl.textfile import exact_number

#: An addressed GPU's range: (node, GPU index, lowest limit W, highest limit W).
GpuRange = tuple[str, int, float, float]
_CLAMP = "or pass --clamp to clamp to each GPU's range."


class LimitsRefused(UsageError):
    """A request refused whole (a GPU missing or out of range, exit 2), and the nodes that could not be read for it.

    The refusal is what the command ends with (its exit status); the nodes' failures (refused connections, timeouts)
    are said after it, not hidden by it: the next try would meet them too.
    """

    def __init__(self, refusal: UsageError, errors: list[NodeError]) -> None:
        super().__init__(refusal.message, refusal.hint)
        self.errors = errors


def check_watts(watts: float | None) -> None:
    """Refuse (UsageError, before any node is contacted) a limit that is not a finite number of watts."""
    if watts is not None and not math.isfinite(watts):
        raise UsageError(
            f"--watts must be a finite number of watts, not {watts:g}; nothing was changed.",
            "give the limit in watts, e.g. --watts 300 (see `factoryctl gpus` for each GPU's range).",
        )


def check_gpus(samples: Sequence[NodeSample], gpus: list[int] | None) -> None:
    """Refuse the request (UsageError, nothing changed) when a node lacks one of the addressed GPUs."""
    for sample in samples:
        have = sorted(gpu.index for gpu in sample.gpus)
        missing = sorted(set(gpus or ()) - set(have))
        if missing:  # every missing index named, folded: naming the first left the rest to one refusal each
            lacks = f"GPU {missing[0]}" if len(missing) == 1 else f"GPUs {fold_indexes(missing)}"
            has = "no GPUs" if not have else f"GPU {have[0]}" if len(have) == 1 else f"GPUs {fold_indexes(have)}"
            raise UsageError(
                f"{sample.node} has no {lacks} (it has {has}); nothing was changed.",
                f"see `factoryctl gpus {sample.node}`, or address fewer nodes.",
            )


def check_range(samples: Sequence[NodeSample], gpus: list[int] | None, watts: float) -> None:
    """Refuse the request (UsageError, nothing changed) when any addressed GPU cannot take `watts`.

    The message counts the GPUs and nodes out of range, with their ranges; the hint gives the range every addressed
    GPU takes, or says there is none.
    """
    ranges = _addressed_ranges(samples, gpus)
    outside = [gpu for gpu in ranges if not gpu[2] <= watts <= gpu[3]]
    if outside:
        raise UsageError(f"{exact_number(watts)} W is outside {_whose(outside)}; nothing was changed.", _hint(ranges))


def _addressed_ranges(samples: Sequence[NodeSample], gpus: list[int] | None) -> list[GpuRange]:
    """The range of every addressed GPU (all of a node's, or its `gpus`) that reports one, in the nodes' order."""
    return [
        (sample.node, gpu.index, gpu.power_limit_min_w, gpu.power_limit_max_w)
        for sample in samples
        for gpu in sample.gpus
        if (gpus is None or gpu.index in gpus)
        and gpu.power_limit_min_w is not None
        and gpu.power_limit_max_w is not None
    ]


def _whose(outside: Sequence[GpuRange]) -> str:
    """`n1/0's power-limit range of 200-700 W`, or `the power-limit range of 16 GPUs on 2 nodes (a[01-02]: ...)`."""
    if len(outside) == 1:
        node, index, low, high = outside[0]
        return f"{node}/{index}'s power-limit range of {_watts(low, high)}"
    nodes = len({gpu[0] for gpu in outside})
    return (
        f"the power-limit range of {len(outside):,} GPUs on {nodes:,} node{'s' * (nodes != 1)} ({_by_range(outside)})"
    )


def _hint(ranges: Sequence[GpuRange]) -> str:
    """The value range every addressed GPU takes, to pick from; or, when their ranges do not overlap, what to do."""
    low, high = max(gpu[2] for gpu in ranges), min(gpu[3] for gpu in ranges)
    if low <= high:
        every = "" if len({gpu[2:] for gpu in ranges}) == 1 else " which every addressed GPU takes,"
        return f"pick a value in {_watts(low, high)},{every} {_CLAMP}"
    return f"no value suits every addressed GPU ({_by_range(ranges)}): set each group on its own, {_CLAMP}"


def _by_range(ranges: Sequence[GpuRange]) -> str:
    """`h[01-02]: 200-700 W; a[01-02]: 100-400 W`: the nodes of each range folded, ranges in the order they come."""
    nodes_of: dict[tuple[float, float], dict[str, None]] = {}
    for node, _, low, high in ranges:
        nodes_of.setdefault((low, high), {})[node] = None
    return "; ".join(f"{fold_nodes(list(nodes))}: {_watts(low, high)}" for (low, high), nodes in nodes_of.items())


def _watts(low: float, high: float) -> str:
    """`100-400 W`, each end as given (never rounded)."""
    return f"{exact_number(low)}-{exact_number(high)} W"
