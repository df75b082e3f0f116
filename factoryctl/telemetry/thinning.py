"""Thinning: a node that sends samples much faster than the interval it was asked for cannot flood the store.

An agent streams one sample per interval (docs/agent-protocol.md, Sample timing: never closer than half an
interval). The writer keeps a node's sample only when its time is at least `KEEP_SPACING` intervals from the last
one kept and its budget allows, and counts the others as dropped (and thinned).

It goes by the samples' own times (on the controller's clock, after any re-stamping), not by when they arrived, so a
backlog read at once after a stall is kept up to the budget. Because times that jump back and forth would pass the
spacing test, a node also has a budget of samples, refilled at one per `REFILL_SPACING` intervals (on the monotonic
clock) and large enough for `BACKLOG_S` of backlog at once. Pure: no IO, no lock (the writer holds its own around
it), and cheap, as it runs on each link's reader thread.
"""

from __future__ import annotations

import dataclasses

#: A sample is kept when its time is this many intervals or more from the last one kept. A stream's samples come an
#: interval apart, but each is stamped once the GPUs are read, and a read of the slow tier (or a slow driver) takes
#: longer: at 0.1 s intervals a sample after a slow read came 40 ms after the one before, and 0.4 thinned it (a code
#: review). The budget below is what bounds a flood; this only refuses a burst of near-identical times.
KEEP_SPACING = 0.1
#: The budget refills at one sample per this many intervals: 2.5 samples per interval at most, sustained.
REFILL_SPACING = 0.4
#: The backlog a node may send at once, in seconds of its samples: the writer's buffer (`buffer_s`) holds no more.
BACKLOG_S = 120.0


@dataclasses.dataclass
class SampleSpacing:
    """One node's kept samples: the time of the last, and how many more it may send at once."""

    last_kept: float | None = None
    budget: float = 0.0
    refilled_at: float | None = None  # monotonic time of the budget's last refill

    def keeps(self, time: float, mono: float, interval_s: float) -> bool:
        """Whether the node's sample stamped `time`, arrived at monotonic `mono`, is kept (the others are thinned)."""
        spacing, refill, burst = KEEP_SPACING * interval_s, REFILL_SPACING * interval_s, BACKLOG_S / interval_s + 2
        since = burst * refill if self.refilled_at is None else mono - self.refilled_at
        self.budget, self.refilled_at = min(burst, self.budget + since / refill), mono
        if (self.last_kept is not None and abs(time - self.last_kept) < spacing) or self.budget < 1:
            return False
        self.last_kept, self.budget = time, self.budget - 1
        return True
