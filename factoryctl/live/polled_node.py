"""`PolledNode`: one node of the dashboard's own collector (`PolledServices`), the sink its `NodeLink` streams into.

Its state and reason are the controller's `NodeHealth` (telemetry/health.py), fed what the controller's writer is
fed, so `dash` with no controller and `nodes list` say the same of the same history; each change is an event worded
as the controller's. Only what the controller has no use for is judged here: `connecting` until the node is first
heard from, the view a controller handed back (`seed`), and a power cap still waiting when the node goes down
(ended then, said as a timeout: a hung node's cap waited for its link to give up on the session, 10 s and more, and
was then said to have "exited"). The judge thread judges a node only when its silence may have changed its state
(`due_at`). Once factoryctl's own files changed under the dashboard (`StaleCode`: an upgrade), no failure is the
node's and every node is `stale`, never down. Imports no Textual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError
from factoryctl.live.services_base import dashboard_event
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import NodeState
from factoryctl.telemetry.health import (
    JITTER_GRACE,
    MIN_JUDGED_INTERVAL_S,
    MISSED_FOR_DEGRADED,
    SEVERITY,
    NodeHealth,
    carry_forward,
    gpu_events,
    is_silence_reason,
    silent_for_down_s,
    state_event,
)
from factoryctl.telemetry.links import Backoff, Connector, NodeLink

if TYPE_CHECKING:
    from factoryctl.live.services_polled import PolledServices
    from factoryctl.transport.session import AgentSession

#: The state a node shows until its first sample or failure (never waited for: rows appear as nodes answer).
CONNECTING = "connecting"
#: The state every node shows once the dashboard's own code changed under it (`PolledNode._unknown`).
STALE = "stale"


class PolledNode:
    """One node as the dashboard shows it: the sink its `NodeLink` streams into, judged by the controller's machine.

    Whether the node is up, degraded or down, and why, is the controller's `NodeHealth` (telemetry/health.py), fed
    what the controller's writer is fed, on this dashboard's monotonic clock: one state machine in the code base, so
    `dash` with no controller and `nodes list` say the same of the same history. Only what the controller has no use
    for is judged here: `connecting` until the node is first heard from, and the view a controller handed back.
    """

    def __init__(self, spec: NodeSpec, owner: PolledServices, connect: Connector, backoff: Backoff) -> None:
        self.spec = spec
        self.owner = owner
        self.latest: NodeSample | None = None
        #: The judge: up, degraded or down, and why, on the owner's monotonic clock.
        self.health = NodeHealth(spec.name, owner.interval_s)
        #: Why the link broke or could not be made, until the next sample: no power cap is tried meanwhile.
        self.failure: NodeError | None = None
        #: A broken session's failure already told to `health` (the snapshot notices it before the link does).
        self._told: NodeError | None = None
        self.shown = CONNECTING  # the state last judged (and announced by an event)
        self.shown_error: str | None = None  # and its error kind: a down node failing another way is news too
        self.shown_message: str | None = None  # and its reason: a silence's ("3 samples missed.") replaced is news
        #: What the dashboard showed last for this node when a controller handed back (`seed`), until it answers.
        self.seeded: NodeSample | None = None
        #: When each power cap still waiting for this node's answer was asked (monotonic): `judge` ends them if it
        #: goes down meanwhile (`_give_up_caps`).
        self.caps: list[float] = []
        #: When its silence may next change its state (monotonic; inf: only a sample or a failure can): the judge
        #: thread judges it from then on (`_next_due`). Samples and failures judge it themselves, at once.
        self.due_at = 0.0
        #: Guards the fields above; re-entrant because `judge` holds it while `sample` takes it again.
        self.lock = threading.RLock()
        self.link = NodeLink(
            spec,
            owner.interval_s,
            connect,
            self,
            backoff,
            stall_s=owner.link_stall_s,
            slow_interval_s=owner.config.settings.controller.slow_interval_s,
            stream_timeout_s=owner.connect_timeout_s,
        )

    @property
    def session(self) -> AgentSession | None:
        """The live agent session (None while not connected), for requests such as a power cap."""
        return self.link.session

    @property
    def connecting(self) -> bool:
        """Inside a connect: `close()` does not wait for it."""
        return self.link.connecting

    def offer(self, sample: NodeSample) -> None:
        """A sample from the stream (on the session's reader thread): kept, recorded, judged.

        Kept as the controller's writer keeps it (`carry_forward`): a restarted agent lists only the XIDs raised since
        it started, so each GPU keeps those seen before (the node's `xid` flag lasts its hour across a reconnect).
        """
        with self.lock:
            before = self.latest
            self.latest = carry_forward(before, sample)
            self.failure = self.seeded = None
            self.health.seen(self.owner.monotonic())
        self.owner.history.record_node(sample)
        found = self.owner.thermal.keep(gpu_events(before, sample), sample)
        if before is None:  # a condition already there: the store may have its event, with its own time
            found = [event for event in found if not self.owner.stored_already(event)]
        for event in found:  # ECC errors, lost GPUs, thermal slowdown: as the controller sees them
            self.owner.add_event(dashboard_event(event))
        self.judge()

    def seed(self, shown: NodeSample, now_mono: float) -> None:
        """Start from what the dashboard showed last (a controller handing back), not from `connecting`.

        A node that was up or degraded keeps its last sample (its GPUs, so an unhealthy one stays unhealthy) and its
        state, and gets a fresh grace, as a link just made does: its silence counts from when this collector started
        listening (`now_mono`, and not while its link is still connecting), never from the controller's last sample,
        which the dashboard notices up to `CHECK_EVERY_S` late. A down node stays down, with its reason, until it
        answers. Its first sample or failure replaces the seed; nothing is announced by seeding.
        """
        with self.lock:
            if self.health.recorded:
                return  # heard from already: the node's own word wins
            if shown.state == "down":
                message = shown.message or f"{shown.node} is down."
                self.failure = NodeError(shown.node, shown.error or "timeout", message, None)
                self.health.failed(now_mono, self.failure.kind, message)
            elif shown.state in SEVERITY and shown.gpus:
                self.latest = dataclasses.replace(shown, state="up", error=None, message=None)
                self.health.seen(now_mono)
                self.seeded = shown
            else:
                return
            self.shown, self.shown_error, self.shown_message = shown.state, shown.error, shown.message

    def clock_bounded(self, node: str, node_time: float, asked_at: float) -> None:
        """A node's time from a round trip: the dashboard shows its samples as they come and stamps nothing."""

    def link_failed(self, node: str, error: NodeError) -> None:
        """The link broke, went silent or could not be made: `NodeHealth.failed` (degraded at once, down if silent)."""
        self._failed(error, by_agent=False)

    def samples_missed(self, node: str, count: int) -> None:
        """The agent dropped samples nobody read: the dashboard keeps no `dropped` count (the controller does)."""

    def link_connected(self, node: str) -> None:
        """The link is made again: its earlier failure no longer says why the node is silent (`NodeHealth.connected`)."""
        with self.lock:
            self.health.connected()

    def sample_failed(self, node: str, error: NodeError) -> None:
        """The agent could not take a sample (its driver): `NodeHealth.sample_failed`.

        A node up with a recent good sample stays up; silence degrades it and takes it down with this reason if no
        good sample follows. A node never heard from is down with it at once.
        """
        self._failed(error, by_agent=True)

    def _failed(self, error: NodeError, by_agent: bool) -> None:
        if self.owner.stop_event.is_set() or self.owner.stale.failure is not None:
            return  # the dashboard is closing the link, or its own code changed under it: not the node's failure
        with self.lock:
            now_mono = self.owner.monotonic()
            if by_agent:
                self.health.sample_failed(now_mono, error.kind, error.message)
            else:  # the node's own word replaces the view handed back (a degraded one stays so until a sample)
                self.failure, self._told, self.seeded = error, error, None
                self.health.failed(now_mono, error.kind, error.message)
        self.judge()

    def judge(self, now: float | None = None) -> NodeSample:
        """The node's sample now, compared with the state last judged: each change is an event (not the first answer).

        The judge thread, the samples and the UI's snapshots all judge: the state is computed, swapped and announced
        under one lock, so an older verdict can never overwrite a newer one (which announced one outage twice). The
        events are the controller's (`state_event`: "n1 is degraded: 1 sample missed."), and as it records a down node
        that now fails another way (`NodeHealth.failed`), so does this. A power cap still waiting on a node judged
        down ends now (`_give_up_caps`).
        """
        with self.lock:
            sample = self._verdict(now)
            self.due_at = self._next_due()
            asked = self.caps[0] if self.caps and sample.state == "down" else None
        if asked is not None:
            self._give_up_caps(asked)
        return sample

    def _next_due(self) -> float:
        """When silence may next change the node's state (monotonic), for the judge thread (call with the lock).

        Never later than `NodeHealth` would change it: its silence counts from its last sample or later. A node down,
        or not heard from yet, changes only by a sample or a failure, which judge it at once. A seeded node, or one a
        power cap waits on, is judged every time.
        """
        health = self.health
        if self.seeded is not None or self.caps:
            return 0.0
        if health.state == "down" or not health.recorded or health.last_seen is None:
            return math.inf
        if health.state == "up":
            return health.last_seen + (MISSED_FOR_DEGRADED + JITTER_GRACE) * max(
                health.interval_s, MIN_JUDGED_INTERVAL_S
            )
        return health.last_seen + silent_for_down_s(health.interval_s)

    def _give_up_caps(self, asked: float) -> None:
        """End the power caps waiting on this node, judged down: it did not answer in time (a timeout, said so)."""
        session = self.link.session  # outside our lock, as `sample` reads it
        if session is None:
            return  # the link closed it: its requests were woken with why
        waited_s = self.owner.monotonic() - asked
        said = (
            f"did not answer the power cap within {waited_s:.0f} s and is down (silent); "
            "the cap may still take effect if it answers later."
        )
        hint = f"run `factoryctl nodes check {self.spec.name}`; `factoryctl gpus {self.spec.name}` shows its limits."
        session.give_up("set_power_limit", NodeError(self.spec.name, "timeout", said, hint))

    @contextlib.contextmanager
    def asking_cap(self) -> Iterator[None]:
        """A power cap waits for this node's answer meanwhile: ended by `judge` if the node goes down."""
        asked = self.owner.monotonic()
        with self.lock:
            self.caps.append(asked)
            self.due_at = 0.0
        try:
            yield
        finally:
            with self.lock:
                self.caps.remove(asked)

    def _verdict(self, now: float | None) -> NodeSample:
        """`judge`'s sample, and its event (call with the lock)."""
        sample = self.sample(time.time() if now is None else now, self.owner.monotonic())
        if self.owner.stale.failure is not None:
            return self._unknown(sample)  # nothing is announced: the dashboard cannot tell any more
        before, self.shown = self.shown, sample.state
        why_before, self.shown_error = self.shown_error, sample.error
        said_before, self.shown_message = self.shown_message, sample.message
        if sample.state not in SEVERITY or (before == CONNECTING and sample.state == "up"):
            return sample
        # a silence's reason replaced by a failure's, even of its kind (`timeout`), is news, as to the controller
        refined = is_silence_reason(why_before, said_before) and not is_silence_reason(sample.error, sample.message)
        if sample.state == before and not refined and (sample.state != "down" or sample.error == why_before):
            return sample
        change = NodeState(self.spec.name, sample.state, time.time(), None, sample.error, sample.message)
        self.owner.add_event(dashboard_event(state_event(change)))
        return sample

    def _unknown(self, sample: NodeSample) -> NodeSample:
        """The node once the dashboard's own code changed under it (`StaleCode`): `stale`, its last values kept.

        Neither up nor down: this dashboard can no longer reach it, whatever the node does.
        """
        said = f"not known: {self.owner.stale.message}."
        if self.latest is None:
            return NodeSample(node=self.spec.name, time=sample.time, state=STALE, message=said)
        return dataclasses.replace(self.latest, state=STALE, error=None, message=said)

    def sample(self, now: float, now_mono: float) -> NodeSample:
        """What the dashboard should show for this node at `now` (wall clock; `now_mono` on the monotonic one)."""
        session = self.link.session  # read outside our lock: the link holds its own while it calls us
        broken = session.failure if session is not None else None
        with self.lock:
            if self.seeded is not None and self.link.connecting:
                self.health.seen(now_mono)  # a seeded node's silence counts once its link is made (`seed`)
            if broken is not None and broken is not self._told:  # judged before the link next looks (half an interval)
                self.failure = self._told = broken
                self.health.failed(now_mono, broken.kind, broken.message)
            self.health.tick(now_mono)
            return self._shown(now)

    def _shown(self, now: float) -> NodeSample:
        """The node's state as `health` judges it, with its last sample's values (call with the lock)."""
        health, latest, name = self.health, self.latest, self.spec.name
        if not health.recorded:
            return NodeSample(node=name, time=now, state=CONNECTING, message="connecting…")
        if health.state == "up" and self.seeded is not None and self.seeded.state == "degraded":
            return self.seeded  # degraded when the controller handed back: only a sample brings it up
        if health.state == "up" and latest is not None:  # a failed sample after a recent good one: still up
            return latest
        if health.state == "down" or latest is None:
            seen = now if latest is None else latest.time
            return NodeSample(node=name, time=seen, state="down", error=health.error, message=health.message)
        return dataclasses.replace(latest, state="degraded", error=health.error, message=health.message)
