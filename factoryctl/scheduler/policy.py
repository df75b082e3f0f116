"""Scheduling policies as data: queue order, reservations and backfill, plus the job shape every policy shares.

The textbook reference policies (fifo, sjf, easy) and our `default` differ only in these knobs, so the simulator
compares them through one code path and the numbers stay comparable.

The `default` order is priority with linear aging, written as a single sort key in seconds:

    key = submitted_at + min(size_weight * walltime, size_cap_s) - priority * priority_unit_s

Every waiting second counts the same for every job (aging), a long job starts with a handicap of ten times its
walltime (so short jobs go first, as in SJF), and one unit of priority is worth `priority_unit_s` (a day) of
waiting. Because every job ages at the same rate the order between two jobs never changes, which keeps a pass
cheap. The weights were tuned on the Philly slice (docs/scheduler.md, benchmarks/README.md) across 16 to 32 nodes
and checked on jittered, time-scaled copies of it.

Starvation guard: a job that has waited the floor, or `starve_drain_factor` times the queue's drain time (queued
GPU-seconds / cluster GPUs) when that is longer, is starving: the threshold follows the load, so a deep backlog lets
short jobs overtake for longer and a light one protects old jobs early. A small job (one GPU, or a quarter of a
node at most) starts as soon as it is protected, where a gang's reservation takes time to clear: half the drain
time is the gang's head start, so a small job starves only after `starve_small_drain_factor` (1) times the drain
time. Without that, on a few nodes of 1-GPU jobs the oldest job had nearly always waited half the drain time and
the queue ran in submission order, at FIFO's average. The floor is `starve_after_s`, or
`starve_walltime_factor` times the queued jobs' median walltime when that is shorter: it follows the jobs' time
scale, so minute-long jobs are not left to wait hours. Both the floor's median and the drain time are walltimes,
which users over-estimate, so both are scaled by `walltime_use`, the share of its walltime a job really runs
(the median over recently finished jobs; 1 when walltimes are exact). The oldest `protect_oldest`
starving jobs are considered first, and (with `reserve_starving_only`) only they get reservations, so large gangs
are protected when they need it without reserving capacity for every young job. Everything else backfills around
the reservations. Protection is sticky: a job stays protected until it starts even when new arrivals lengthen the
drain time, so a reservation is never withdrawn.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from factoryctl.errors import UsageError
from factoryctl.model.jobs import DEFAULT_WALLTIME_S

Order = Literal["fifo", "sjf", "aging"]


@dataclass(frozen=True)
class SchedulerConfig:
    """The knobs of one policy.

    Attributes:
        name: the policy's name in reports.
        order: `fifo` (submit time), `sjf` (shortest walltime first) or `aging` (the default key above).
        reservations: how many jobs at the head of the queue get a reserved start when they do not fit.
        backfill: let later jobs start when they delay no reservation; without it a pass stops at the first job
            that does not fit (strict queue order).
        priority_unit_s: seconds of waiting one unit of priority is worth (aging order).
        size_weight: handicap per second of walltime (aging order).
        size_cap_s: the largest handicap (aging order).
        starve_after_s: the longest the starving floor can be (`starvation.starving_floor`): a job is starving once
            it has waited the floor, or the drain-time threshold when that is longer (None: no starvation guard).
        reserve_starving_only: reservations go to starving jobs only.
        protect_oldest: how many starving jobs (oldest first) jump the queue (None: all of them).
        starve_drain_factor: the starving threshold is at least this multiple of the queue's drain time (queued
            GPU-seconds / cluster GPUs), so it follows the load (0: the floor only, see `starving_floor`).
        starve_small_drain_factor: for a small job (`starvation.is_small`: one GPU, or a quarter of a node at most),
            the starving threshold is at least this multiple of the drain time instead: such a job starts as soon
            as it is protected, so it needs no head start on its reservation (at most `starve_drain_factor`: none).
        starve_walltime_factor: the floor `starve_after_s` is lowered to this multiple of the queued jobs' median
            walltime when that is shorter, so a queue of short jobs is protected on its own time scale, not after
            hours (0: the fixed floor only).
        walltime_use: the share of their walltimes jobs really run (0-1), learned from finished jobs
            (`starvation.learned_walltime_use`): the floor's median walltime and the drain time are scaled by it,
            so over-estimated walltimes do not delay protection (1: walltimes are exact, no scaling).
        walltime_use_window: how many of the last finished jobs `walltime_use` is the median over, learned once
            that many have finished (the replay learns it so; until then, and with 0, the configured value holds).
        preemption: stop lower-priority jobs for a higher-priority one that does not fit.
        grace_s: how long a preempted job gets to checkpoint before it is killed.
        default_walltime_s: walltime assumed for jobs submitted without one.
        exact_walltimes: the replay plans with each job's real run time as its walltime, whatever the trace asked
            for: how the textbook references are defined ("using exact durations as walltimes"), so that everyone's
            reference figures agree. A real scheduler never knows them, and `default` does not use them.
    """

    name: str = "default"
    order: Order = "aging"
    reservations: int = 1
    backfill: bool = True
    priority_unit_s: float = 86400.0
    size_weight: float = 10.0
    size_cap_s: float = float("inf")
    starve_after_s: float | None = 12 * 3600.0
    reserve_starving_only: bool = True
    protect_oldest: int | None = 1
    starve_drain_factor: float = 0.5
    starve_small_drain_factor: float = 1.0
    starve_walltime_factor: float = 0.5
    walltime_use: float = 1.0
    walltime_use_window: int = 100
    preemption: bool = False
    grace_s: float = 300.0
    default_walltime_s: float = DEFAULT_WALLTIME_S
    exact_walltimes: bool = False

    def __post_init__(self) -> None:
        """Reject knobs that make no sense."""
        if self.reservations < 0:
            raise UsageError(f"reservations must be 0 or more, not {self.reservations}")
        if (
            min(
                self.size_weight,
                self.size_cap_s,
                self.grace_s,
                self.starve_drain_factor,
                self.starve_small_drain_factor,
                self.starve_walltime_factor,
            )
            < 0
        ):
            raise UsageError(
                "size_weight, size_cap_s, grace_s, starve_drain_factor, starve_small_drain_factor and"
                " starve_walltime_factor must not be negative"
            )
        if not 0.0 <= self.walltime_use <= 1.0 or self.walltime_use_window < 0:
            raise UsageError(
                f"walltime_use must be between 0 and 1 (not {self.walltime_use}) and walltime_use_window 0 or more"
                f" (not {self.walltime_use_window})"
            )

    def order_key(self, submitted_at: float, walltime: float, priority: int, seq: int) -> tuple[float, float, int]:
        """The sort key of a queued job (smaller runs first); `seq` breaks ties in submission order."""
        if self.order == "fifo":
            return (submitted_at, 0.0, seq)
        if self.order == "sjf":
            return (walltime, submitted_at, seq)
        handicap = min(self.size_weight * walltime, self.size_cap_s)
        return (submitted_at + handicap - priority * self.priority_unit_s, 0.0, seq)


def _textbook(name: str, order: Order, reservations: int, backfill: bool) -> SchedulerConfig:
    """A reference policy: no starvation guard, priorities ignored, exact durations (the textbook definitions)."""
    return SchedulerConfig(
        name=name,
        exact_walltimes=True,
        order=order,
        reservations=reservations,
        backfill=backfill,
        starve_after_s=None,
        reserve_starving_only=False,
        protect_oldest=None,
    )


#: The policies `sched simulate --policy` knows. fifo/sjf/easy are the textbook ones (see docs/scheduler.md).
POLICIES: dict[str, SchedulerConfig] = {
    "fifo": _textbook("fifo", "fifo", reservations=0, backfill=False),
    "sjf": _textbook("sjf", "sjf", reservations=0, backfill=False),
    "easy": _textbook("easy", "fifo", reservations=1, backfill=True),
    "default": SchedulerConfig(),
}


def policy_named(name: str) -> SchedulerConfig:
    """The configuration of a named policy; an unknown name is a usage error."""
    try:
        return POLICIES[name]
    except KeyError:
        pass
    lowered = name.lower()
    if lowered in POLICIES:
        return POLICIES[lowered]
    close = difflib.get_close_matches(lowered, POLICIES, n=1)
    known = ", ".join(POLICIES)
    guess = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(f"unknown policy {name!r}", hint=f"choose from {known}{guess}")


def gang_shape(num_gpus: int, gpus_per_node: int | None, node_size: int) -> tuple[int, int]:
    """How a gang spreads over nodes: (nodes, GPUs to hold on each node).

    An explicit `gpus_per_node` wins. Otherwise a job of up to one node's GPUs packs onto one node, and a larger
    one takes the fewest nodes that can hold it, as evenly as possible (16 on 8-GPU nodes: 2 x 8 whole nodes; 12:
    2 x 6; 11: 2 x 6 held, used as 6 + 5, see `split_gang`). It never spreads a gang over more nodes than it needs.
    """
    if gpus_per_node is not None:
        return (num_gpus // gpus_per_node, gpus_per_node)
    if num_gpus <= node_size or node_size <= 0:
        return (1, num_gpus)
    nodes = -(-num_gpus // node_size)
    return (nodes, -(-num_gpus // nodes))


def split_gang(num_gpus: int, nodes: int) -> list[int]:
    """The GPUs a gang uses on each of its nodes, in rank order: as even as possible, larger shares first.

    `split_gang(11, 2)` is [6, 5]; a gang whose GPUs divide evenly uses the same count everywhere.
    """
    share, extra = divmod(num_gpus, nodes)
    return [share + 1] * extra + [share] * (nodes - extra)
