"""The queued jobs of one gang shape, in queue order, in blocks that know their range of walltimes.

Why: replaying an overloaded cluster keeps tens of thousands of jobs queued. Once a pass has dealt with the head
of the queue (started it, or reserved for it), it only looks for jobs to backfill, and a job is worth trying
only if no job of its shape and its *bucket* (how many reservations start before it would end) failed earlier in
the pass: capacity only shrinks within a pass, so it would fail too. Walking the whole queue to find the few jobs
worth trying would cost O(queue) per pass, quadratic in the backlog over a replay. The simulator keeps one
`ShapeQueue` per queued shape instead (`core.QueueIndex.by_shape`); the pass asks each for its next job in a bucket,
and skips whole blocks whose walltimes all fall in other buckets.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from operator import attrgetter

from factoryctl.scheduler.passdata import Candidate

#: A queue's sort key (`SchedulerConfig.order_key`).
Key = tuple[float, float, int]

_by_key = attrgetter("key")
#: Jobs per block: a block is split when it doubles. Small enough to scan, large enough to skip many jobs at once.
_BLOCK = 64


class ShapeQueue:
    """One shape's queued jobs sorted by key, in blocks with their first key and shortest and longest walltime.

    Keys must be unique (the simulator's keys end with a sequence number).
    """

    __slots__ = ("blocks", "firsts", "highs", "lows", "size")

    def __init__(self) -> None:
        """An empty queue."""
        self.blocks: list[list[Candidate]] = []
        self.firsts: list[Key] = []
        self.lows: list[float] = []
        self.highs: list[float] = []
        self.size = 0

    def __len__(self) -> int:
        """How many jobs are queued."""
        return self.size

    def jobs(self) -> list[Candidate]:
        """Every job, in queue order (for tests)."""
        return [job for block in self.blocks for job in block]

    def add(self, job: Candidate) -> None:
        """Queue `job` in its place by key."""
        self.size += 1
        if not self.blocks:
            self.blocks.append([job])
            self.firsts.append(job.key)
            self.lows.append(job.walltime)
            self.highs.append(job.walltime)
            return
        at = max(0, bisect_right(self.firsts, job.key) - 1)
        block = self.blocks[at]
        insort(block, job, key=_by_key)
        self.firsts[at] = block[0].key
        self.lows[at] = min(self.lows[at], job.walltime)
        self.highs[at] = max(self.highs[at], job.walltime)
        if len(block) > 2 * _BLOCK:
            rest = block[_BLOCK:]
            del block[_BLOCK:]
            self.blocks.insert(at + 1, rest)
            self.firsts.insert(at + 1, rest[0].key)
            self.lows.insert(at + 1, 0.0)
            self.highs.insert(at + 1, 0.0)
            self._measure(at)
            self._measure(at + 1)

    def remove(self, job: Candidate) -> bool:
        """Take `job` out; False if it is not queued here."""
        at = bisect_right(self.firsts, job.key) - 1
        if at < 0:
            return False
        block = self.blocks[at]
        spot = bisect_left(block, job.key, key=_by_key)
        if spot == len(block) or block[spot] is not job:
            return False
        del block[spot]
        self.size -= 1
        if not block:
            del self.blocks[at], self.firsts[at], self.lows[at], self.highs[at]
        else:
            self.firsts[at] = block[0].key
            if job.walltime in (self.lows[at], self.highs[at]):
                self._measure(at)
        return True

    def _measure(self, at: int) -> None:
        walltimes = [job.walltime for job in self.blocks[at]]
        self.lows[at], self.highs[at] = min(walltimes), max(walltimes)

    def first_after(self, after: Key | None, bucket: int, now: float, starts: Sequence[float]) -> Candidate | None:
        """The first job after key `after` (from the start with None) in `bucket`, or None.

        A job's bucket is `bisect_left(starts, now + walltime)`, exactly as the pass computes it: the number of
        reservations that start before it would end. It never decreases with the walltime, so a block whose
        shortest and longest walltimes are both on one side of `bucket` holds none and is skipped.
        """
        blocks, lows, highs = self.blocks, self.lows, self.highs
        first = 0 if after is None else max(0, bisect_right(self.firsts, after) - 1)
        for at in range(first, len(blocks)):
            if bisect_left(starts, now + lows[at]) > bucket or bisect_left(starts, now + highs[at]) < bucket:
                continue
            block = blocks[at]
            spot = 0 if after is None else bisect_right(block, after, key=_by_key)
            for job in block[spot:] if spot else block:
                if bisect_left(starts, now + job.walltime) == bucket:
                    return job
        return None
