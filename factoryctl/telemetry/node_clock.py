"""What the store writer knows of each node's clock, so a node whose clock is off is stored on the controller's.

Kept apart from the writer (which only asks whether to re-stamp a sample, and when to report) because the estimate
has rules of its own: a sample is never early, only late, so an offset is bounded below by each sample's; a backlog
read at once must not lower it; a step of the controller's own clock moves every estimate by the step.

Samples alone cannot tell a node behind from a controller reading them late. So a link whose samples look behind
asks its agent for its time (`clock`): the answer, less when it was asked, bounds the offset from above, and a node
is behind only while that bound says so too. The bound is asked again whenever samples look behind, never taken
from a stream's start, which goes stale.
"""

from __future__ import annotations

import dataclasses

#: A node whose clock is off from the controller's by more than this has its samples re-stamped; it is in step
#: again below half of it.
CLOCK_OFF_S = 5.0
#: A node's offset is its least delayed sample's over a window this long (a backlog of late samples does not move it).
CLOCK_WINDOW_S = 10.0
#: A node's first samples may be a backlog read at once: an offset behind the controller's is trusted once samples
#: came in over this long (one ahead is trusted at once: no delay makes a sample look early).
CLOCK_TRUST_S = 2.0
#: How often a link whose samples look behind asks its agent for its time (at most).
CLOCK_CHECK_EVERY_S = 10.0
#: How long a node's clock must stay off (or in step again) before it is reported: a step of the controller's own
#: clock puts every node out of step for a moment.
CLOCK_REPORT_AFTER_S = 30.0


@dataclasses.dataclass
class NodeClock:
    """What the writer knows of one node's clock against its own (monotonic times for the bookkeeping).

    A sample is never early, only late: a node's offset is bounded below by (its time - our time) of each sample,
    so the estimate is the largest of those over the last full window (what a backlog of late samples, read at
    once after the controller was stopped, cannot lower), or larger as soon as a sample shows more.
    """

    best: float  # the offset: the node's time - the controller's, plus the smallest delay seen
    window_from: float
    first_at: float  # when its first sample arrived
    window_max: float | None = None  # the largest offset seen in the current window
    off: bool = False  # its samples are re-stamped by `best`
    reported: bool = False  # what was last reported: off or in step
    reported_best: float = 0.0  # and by how much
    changed_at: float | None = None  # since when `off` (or how much) differs from what was reported
    #: The latest upper bound of the offset from a round trip (its time - when we asked); None: never asked, or an
    #: agent without `clock`, whose samples alone judge it.
    ceiling: float | None = None
    #: The controller's own clock steps since the last report: an offset they alone explain is not the node's
    stepped: float = 0.0

    def measure(self, offset: float, mono: float) -> None:
        """A sample arrived `offset` seconds ahead of the controller's clock (negative: behind)."""
        if mono - self.window_from >= CLOCK_WINDOW_S:  # a clock set back is believed after a full window
            if self.window_max is not None:
                self.best = self.window_max
            self.window_max, self.window_from = None, mono
        if self.window_max is None or offset > self.window_max:
            self.window_max = offset
        self.best = max(self.best, offset)
        limit = CLOCK_OFF_S / 2 if self.off else CLOCK_OFF_S
        trusted = mono - self.first_at >= CLOCK_TRUST_S  # a backlog may look behind; no delay makes one look ahead
        behind = trusted and self.best < -limit and (self.ceiling is None or self.ceiling < -limit)
        self.off = self.best > limit or behind
        moved = self.off and abs(self.best - self.reported_best) > CLOCK_OFF_S  # still off, by another amount
        if self.off == self.reported and not moved:
            self.changed_at, self.stepped = None, 0.0  # as reported: a step since is the node's too (or undone)
        elif self.changed_at is None:
            self.changed_at = mono

    def bounded(self, ceiling: float) -> None:
        """A round trip says the offset is at most `ceiling` (the node's time - when the controller asked)."""
        self.ceiling = ceiling

    def controller_stepped(self, step: float) -> None:
        """The controller's wall clock jumped `step` seconds: every offset measured so far is `step` less now."""
        self.best -= step
        self.stepped += step
        if self.window_max is not None:
            self.window_max -= step
        if self.ceiling is not None:
            self.ceiling -= step

    def restamped(self, time: float, now: float) -> float | None:
        """A sample's `time` on the controller's clock, or None to keep it: in step, or its clock was just set right."""
        if not self.off or abs(time - self.best - now) > abs(time - now):
            return None  # (`best` believes a clock set back only after a window)
        return time - self.best

    def due(self, mono: float) -> bool:
        """Whether a change has lasted long enough to be reported (then it counts as reported).

        Not when the controller's own steps since the last report explain it (the node's offset moved by them, within
        `CLOCK_OFF_S`): the controller logged its step, and a `clock_skew` for every node (`gpu[01-40] (40) clocks
        are 3600 s behind ... (check NTP on the nodes)`) sent the operator to the nodes for it. It counts as
        reported all the same, so a node's own change from there (or the controller's clock set right) is judged
        from it.
        """
        if self.changed_at is None or mono - self.changed_at < CLOCK_REPORT_AFTER_S:
            return False
        was = self.reported_best if self.reported else 0.0
        ours = self.stepped != 0.0 and abs(self.best - (was - self.stepped)) <= CLOCK_OFF_S
        self.reported, self.reported_best, self.changed_at, self.stepped = self.off, self.best, None, 0.0
        return not ours
