"""What a node's link remembers between samples: when the node was last heard, and when to ask its agent's time.

`NodeLink` runs a connection; these two small classes hold the judgements it makes from the samples it is handed,
so each rule lives in one place and is tested on its own, without a connection:

- `LinkSilence`: when the node was last heard, why its agent's latest sample failed, and how long the link may
  sleep before its silence passes the stall limit. A stall of the controller itself (`StallWatch`) excuses the
  silence it caused, once per silence: a node not heard since is judged on its real silence.
- `ClockProbe`: a sample that arrives more than `CLOCK_OFF_S` behind this machine's clock makes a question of the
  agent's time (`clock`) due, at most once every `CLOCK_CHECK_EVERY_S`, and never again to an agent that said it
  does not know `clock` (until a new agent starts). Only a round trip tells a node behind from a controller that
  read its samples late (`node_clock`).

Both are touched from the session's reader thread (a sample) and the link's thread (its wait); every field is
written in one assignment, so neither takes a lock.
"""

from __future__ import annotations

from factoryctl.errors import NodeError
from factoryctl.telemetry.node_clock import CLOCK_CHECK_EVERY_S, CLOCK_OFF_S
from factoryctl.telemetry.stall_watch import StallWatch

#: The shortest sleep of a connected link: at its stall deadline, it looks again this soon rather than spin.
STALL_RECHECK_S = 0.05


class ClockProbe:
    """Whether a link should ask its agent for its time: samples look behind, not asked lately, and it can answer."""

    def __init__(self) -> None:
        #: When the agent was last asked (monotonic): never, as far as the first sample can tell.
        self.asked_at = -CLOCK_CHECK_EVERY_S
        #: A question is waiting for the link's thread to ask it (never asked on the reader thread).
        self.due = False
        #: Whether the agent can answer (an agent older than `clock` cannot; a session's new agent may).
        self.answers = True

    def sample_seen(self, sample_time: float, wall_now: float, heard_at: float) -> bool:
        """A sample stamped `sample_time` arrived at `wall_now` (`heard_at` monotonic): True if it made a question due."""
        if sample_time - wall_now < -CLOCK_OFF_S and self.may_ask(heard_at):
            self.due = True
            return True
        return False

    def may_ask(self, now: float) -> bool:
        """Whether the agent may be asked at `now` (monotonic): it can answer, and was not asked in the last while."""
        recently = now - self.asked_at < CLOCK_CHECK_EVERY_S
        return self.answers and not self.due and not recently

    def asking(self, now: float) -> None:
        """The link's thread asks now (monotonic): the question is no longer due, and the next waits its turn."""
        self.asked_at, self.due = now, False

    def cannot_answer(self) -> None:
        """The agent does not know `clock`: it is not asked again."""
        self.answers = False

    def new_agent(self) -> None:
        """A new session started a new agent, which may know `clock`."""
        self.answers = True


class LinkSilence:
    """When a link's node was last heard, and what its silence means: a stall to rebuild the link for, or an error."""

    def __init__(self, stall_watch: StallWatch | None = None) -> None:
        self._stall_watch = stall_watch  # a stall of the controller itself is not the node's silence
        #: When the node was last heard (monotonic): its last sample, the link made, or a stall's end after them.
        self.heard_at = 0.0
        #: Whether the node was heard (or its link made) since a stall last excused its silence: one excuse per silence.
        self._excusable = True
        #: Why the agent's latest sample failed, and when (monotonic), while no good sample came after it.
        self._sample_error: tuple[NodeError, float] | None = None

    def heard(self, now: float) -> None:
        """A good sample came at `now` (monotonic): the silence, and the failure before it, are over."""
        self.heard_at, self._excusable = now, True
        self._sample_error = None

    def connected(self, now: float) -> None:
        """The link was made at `now`: its silence counts from here; an earlier excuse is spent no more."""
        self.heard_at, self._excusable = now, True

    def restarted(self, now: float) -> None:
        """The stream was restarted at `now`: its first sample is an interval away, so silence counts from here."""
        self.heard_at = now

    def sample_failed(self, error: NodeError, now: float) -> None:
        """The agent could not take a sample at `now`: the node's silence goes on counting, with this reason."""
        self._sample_error = (error, now)

    def session_started(self) -> None:
        """A new session: the last session's agent's failure says nothing about the new one."""
        self._sample_error = None

    def last_heard(self) -> float:
        """When the node was last heard: its last sample, or the end of a stall of the controller after it.

        A stall of the controller excuses the silence it caused, since samples may still be waiting in the pipes. As the
        writer's `NodeHealth.excuse`, one excuse per silence: a node not heard since is judged on its real silence, its
        link rebuilt even if the controller keeps pausing.
        """
        if self._stall_watch is not None and self._excusable:
            heard = self.heard_at
            excused = self._stall_watch.silence_from(heard)
            if excused > heard:
                self.heard_at, self._excusable = excused, False
        return self.heard_at

    def stalled(self, node: str, silent: float, stall_s: float, now: float) -> NodeError:
        """Why a link silent for `silent` s is rebuilt: its agent's failing samples while they still come, else silence.

        An agent that keeps sending errors is not silent: the node is already reported with their reason, which a
        "no sample for N s" would only replace.
        """
        if self._sample_error is not None:
            error, at = self._sample_error
            if now - at < stall_s / 2:
                return error
        return NodeError(node, "timeout", f"no sample for {silent:.0f} s; reconnecting.")

    def until_stall(self, stall_s: float, now: float) -> float:
        """How long the link may sleep before its silence passes `stall_s` (a failure, stop or new interval ends it)."""
        return max(self.heard_at + stall_s - now, STALL_RECHECK_S)
