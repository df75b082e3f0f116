"""Judging nodes from their samples: the up / degraded / down state machine, and health events between samples.

Pure functions of (what was seen, when): no IO, so the rules are unit-tested without nodes or clocks. A node is `up`
while samples arrive, `degraded` after one missed sample (or the moment its link breaks), and `down` after three (or
when it could not be reached at all); it comes back `up` with its first sample. `silence_state` is the rule for
silence.

`NodeHealth` is the one judge: the controller's writer keeps one per node, and so does the dashboard's own collector
(live/services_polled.py), so `nodes list` and `dash` say the same state and reason for the same history. A failed
sample (the agent could not read its driver) is no outage of its own: a node with a recent good sample stays up,
and the failure's reason is kept for when silence degrades it (`NodeHealth.sample_failed`). Silence is never judged
on an interval below 0.5 s, so ordinary scheduling delay cannot make nodes flap. A restarted controller's judge
starts from the state its store holds (`NodeHealth.stored`), so a node found unchanged is not announced again.
An agent takes a stream's first sample at once and the next on the wall-clock grid, up to one and a half intervals
later (agent/schedule.py): the silence after the first sample of each link's stream is counted from half an
interval after it (`NodeHealth.aligning`), or a node on schedule was `degraded` for a moment after a (re)start.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample, XidEvent
from factoryctl.store.rows import Event, NodeState
from factoryctl.telemetry.thinning import SampleSpacing

#: Samples overdue before a silent node is `degraded`, then `down`: the thresholds of every judge of reachability.
MISSED_FOR_DEGRADED = 1
MISSED_FOR_DOWN = 3
#: Grace for jitter, in intervals: a sample is overdue only once it is this late.
JITTER_GRACE = 0.5
#: Silence is never judged in intervals shorter than this: at 0.05 s, 75 ms late was `degraded` and 175 ms `down`,
#: and a loaded controller made 120 such changes a minute. Intervals of 0.5 s and more keep their thresholds.
MIN_JUDGED_INTERVAL_S = 0.5
#: A node reconnected by a reload is not judged by its silence until its new link streams or fails, and at most
#: this long (longer than a link takes to connect and start its agent, or to give up on a silent one).
RECONNECT_GRACE_S = 60.0
#: A stream's second sample comes up to this many intervals later than one interval after its first, which the agent
#: takes at once (the rest are on the wall-clock grid: agent/schedule.py `next_due`).
ALIGNING_EXTRA = 0.5
_SILENCE_REASON = re.compile(r"\d+ samples? missed\.")
SEVERITY = {"up": "info", "degraded": "warning", "down": "error"}
_RANK = {"up": 0, "degraded": 1, "down": 2}
THERMAL_REASONS = frozenset({"SwThermalSlowdown", "HwThermalSlowdown", "HwSlowdown"})
MAX_XIDS = 8  # XIDs remembered per GPU across agent restarts, newest last (the agent's own list is as long)
#: XIDs whose controller-clock time a node's `XidStamps` remembers: more than any node's agents still list.
XIDS_STAMPED_PER_NODE = 64 * MAX_XIDS
#: A GPU hovering at its slowdown temperature drops in and out of thermal slowdown every few samples; it is one
#: episode (one `thermal` event) until it has stayed out of slowdown this long.
THERMAL_COOL_S = 600.0


def missed_samples(last_seen: float | None, now: float, interval_s: float) -> int:
    """How many samples are overdue, with half an interval of grace for jitter."""
    if last_seen is None:
        return MISSED_FOR_DOWN
    return max(0, int((now - last_seen - JITTER_GRACE * interval_s) // interval_s))


def silence_state(last_seen: float | None, now: float, interval_s: float) -> str:
    """`up`, `degraded` or `down` for a node last heard at `last_seen` (None: never), judged at `now`.

    Both times come from one clock, whichever the caller keeps (the controller's writer, the dashboard's monotonic
    one). With a 1 s interval a node is degraded after 1.5 s of silence and down after 3.5 s; with any interval under
    `MIN_JUDGED_INTERVAL_S`, after 0.75 s and 1.75 s.
    """
    missed = missed_samples(last_seen, now, max(interval_s, MIN_JUDGED_INTERVAL_S))
    if missed >= MISSED_FOR_DOWN:
        return "down"
    return "degraded" if missed >= MISSED_FOR_DEGRADED else "up"


def silence_reason(missed: int) -> str:
    """The reason of a node judged by its silence alone: "1 sample missed.", "3 samples missed."."""
    return f"{missed} sample{'' if missed == 1 else 's'} missed."


def is_silence_reason(error: str | None, message: str | None) -> bool:
    """Whether (`error`, `message`) is `silence_reason`'s, which a failure's reason replaces once one is known."""
    return error == "timeout" and message is not None and _SILENCE_REASON.fullmatch(message) is not None


def silent_for_down_s(interval_s: float) -> float:
    """Seconds of silence after which `silence_state` says `down`."""
    return (MISSED_FOR_DOWN + JITTER_GRACE) * max(interval_s, MIN_JUDGED_INTERVAL_S)


@dataclass
class NodeHealth:
    """One node's reachability, updated by samples, connection failures and the passing of time."""

    node: str
    interval_s: float
    state: str = "down"
    since: float = 0.0
    last_seen: float | None = None
    error: str | None = "agent"
    message: str | None = None
    #: Whether a state of this node was ever returned to be recorded (a node never reached is recorded at its
    #: first failure, whatever it is: until then the store has no row for it and readers poll it themselves).
    recorded: bool = False
    #: Until when silence is not judged (`awaiting_stream`); None: judged as usual.
    hold_until: float | None = None
    #: The failure reported since the last sample or connect, (kind, message): the node's reason when silence
    #: degrades it or takes it down (None: "N samples missed").
    failing: tuple[str, str] | None = None
    #: Silence before this time was the controller's own (it was stalled: `excuse`); None: none was.
    excused_at: float | None = None
    #: Whether a sample came since the last excuse: only then may a stall excuse the node's silence again.
    heard_since_excused: bool = True
    #: Its samples kept for the store: one sending them far faster than `interval_s` is thinned (`keeps`).
    spacing: SampleSpacing = field(default_factory=SampleSpacing)
    #: The state the store held for it when this judge started (a restarted controller's), until its first judged
    #: state: that one, when the same (state and reason's kind), is no change (`_record`). None: nothing stored.
    stored: NodeState | None = None
    #: Whether its next sample is the first of a new link's stream (`connected`: a start, a reconnect).
    first_stream_starting: bool = False
    #: Whether its last sample was that one: the next may come `ALIGNING_EXTRA` of an interval later than usual, so
    #: its silence is counted from that much later (`_heard`).
    aligning: bool = False

    def __post_init__(self) -> None:
        if self.message is None:
            self.message = "not reached yet."

    def seen(self, at: float) -> NodeState | None:
        """A sample arrived (at its agent's time); returns the change to record, if any."""
        if self.last_seen is None or at > self.last_seen:
            self.last_seen = at
        self.hold_until, self.failing, self.heard_since_excused = None, None, True
        self.aligning, self.first_stream_starting = self.first_stream_starting, False
        return self._become("up", at, None, None)

    def keeps(self, time: float, mono: float) -> bool:
        """Whether its sample stamped `time` (on our clock), arrived at monotonic `mono`, is stored (thinning.py)."""
        return self.spacing.keeps(time, mono, self.interval_s)

    def awaiting_stream(self, at: float, grace_s: float = RECONNECT_GRACE_S) -> None:
        """A reload reconnects or re-streams the node: its silence is ours until it streams or fails (or `grace_s`).

        Without it a node whose interval went from 5 s to 1 s was `degraded`, then `down`, while its link was still
        being rebuilt: the silence was judged in the new interval before its stream had switched.
        """
        self.hold_until = at + grace_s
        self.connected()

    def excuse(self, at: float) -> None:
        """The controller itself was stalled until `at` (telemetry/stall_watch.py): silence is counted from `at`.

        A node gets one excuse per silence: one not heard from since its last excuse is judged on its real silence, so a
        controller that keeps pausing cannot keep a dead node `up`.
        """
        if self.heard_since_excused:
            self.excused_at, self.heard_since_excused = at, False

    def _heard(self) -> float | None:
        """When the node's silence started: its last sample (`aligning` allowed for), or the end of a stall after it."""
        if self.last_seen is None:
            return None
        heard = self.last_seen + (ALIGNING_EXTRA * self.interval_s if self.aligning else 0.0)
        return heard if self.excused_at is None else max(heard, self.excused_at)

    def connected(self) -> None:
        """The node's link is (re-)established: an earlier failure ("connection lost") no longer says why it is silent.

        Silence that follows takes it down as "3 samples missed", not with the reason of a link since rebuilt. Its next
        sample is the first of a new stream, whose second may come half an interval later than usual (`aligning`).
        """
        self.failing = None
        self.first_stream_starting, self.aligning = True, False

    def sample_failed(self, at: float, kind: str, message: str) -> NodeState | None:
        """The agent could not take a sample (its link is fine): judged by silence (`silence_state`).

        A node up with a recent good sample keeps its state and records the reason, for silence to degrade it and take
        it down with it if no good sample follows. Any other node (never seen up, or silent already) is judged as by
        `failed`: down at once with the reason when never seen up.
        """
        if self.state == "up" and silence_state(self._heard(), at, self.interval_s) == "up":
            self.hold_until, self.failing = None, (kind, message)  # streaming errors: its silence is its own again
            return None
        return self.failed(at, kind, message)

    def failed(self, at: float, kind: str, message: str) -> NodeState | None:
        """The connection failed or could not be made; the state follows from how long we have been blind.

        A node that stays down but now fails another way is recorded too, and so is a never-reached node's first failure
        of any kind, so readers of the store say why it is down and exit accordingly (4 for refused), as a poll would.
        So is a node `degraded` or `down` for its silence alone ("3 samples missed") whose failure now says why, even
        of the same kind (`timeout`: `no answer from 10.0.0.2:22 within 5 s`): once per outage, since only silence
        sets such a reason. The same failure again records nothing. The new reason is stamped with the time it
        appeared (`at`), not the time the node went down: its event must not predate it.
        """
        was = (self.error, self.message)
        self.error, self.message, self.hold_until, self.failing = kind, message, None, (kind, message)
        change = self._become(self._state_at(at, failed=True), at, kind, message)
        if change is not None or self.state == "up":
            return change
        if (self.state == "down" and (kind != was[0] or not self.recorded)) or is_silence_reason(*was):
            return self._record(self.state, at, kind, message)  # dated from its reason, as every other change
        return None

    def tick(self, now: float) -> NodeState | None:
        """Time passed with no sample: degrade, then go down after three missed samples.

        A node failing (its link broke, its agent sends errors instead of samples) goes down with that reason, not
        "3 samples missed": `nodes` and the `node_down` event say what is wrong with it.
        """
        if self.state == "down" or (self.hold_until is not None and now < self.hold_until):
            return None
        state = self._state_at(now)
        if _RANK[state] <= _RANK[self.state]:  # only a sample brings a node back up
            return None
        if self.failing is not None:
            return self._become(state, now, *self.failing)
        return self._become(state, now, "timeout", silence_reason(missed_samples(self._heard(), now, self.interval_s)))

    def _state_at(self, now: float, failed: bool = False) -> str:
        state = silence_state(self._heard(), now, self.interval_s)
        return "degraded" if failed and state == "up" else state  # a broken link is at least degraded

    def _become(self, state: str, at: float, error: str | None, message: str | None) -> NodeState | None:
        if state == self.state:
            return None
        return self._record(state, at, error, message)

    def _record(self, state: str, at: float, error: str | None, message: str | None) -> NodeState | None:
        """Take `state` (judged at `at`); returns the change to record, or None when the store holds it already.

        A restarted controller's first judgement of a node the store holds in the same state, for the same kind of
        reason, is no change: it keeps the stored `since` and logs no event, however old (`controller_start` says the
        controller restarted). Otherwise every restart logged each node's `node_up` or `node_down` again. A node stored
        as down for its silence ("3 samples missed") that is now found failing says why: that is a change, as in
        `failed`, or its stored reason stayed "3 samples missed" however long the new controller knew better.
        """
        error, message = (None, None) if state == "up" else (error, message)
        stored, self.stored = self.stored, None
        held = stored is not None and stored.state == state and (state == "up" or stored.error == error)
        if held and stored is not None and is_silence_reason(stored.error, stored.message):
            held = is_silence_reason(error, message)  # a failure now says why a node stored as silent is down
        self.state, self.recorded = state, True
        self.since = stored.since if stored is not None and held else at
        self.error, self.message = error, message
        return None if held else NodeState(self.node, state, at, self.last_seen, error, message)

    def overdue(self, now: float) -> bool:
        """Whether the link should be torn down and rebuilt (three samples missed while connected)."""
        return missed_samples(self._heard(), now, self.interval_s) >= MISSED_FOR_DOWN


def state_event(change: NodeState) -> Event:
    """The event recorded when a node changes state: "n1 is down: no sample for 10 s", the node named once."""
    text = f"{change.node} is {change.state}"
    said = (change.message or "").removeprefix(f"{change.node}: ").strip()
    if said and change.state != "up":
        text += f": {said}"
    return Event(change.since, f"node_{change.state}", text, node=change.node, severity=SEVERITY[change.state])


def gpu_events(before: NodeSample | None, after: NodeSample) -> list[Event]:
    """Health events between two samples of one node: XIDs, ECC errors, lost GPUs, thermal slowdown starting.

    An XID is an event once: those already listed in `before` are not new. Every XID of a node's first sample is
    new, since an agent lists only the XIDs raised after it started. A GPU seen for the first time (a node never
    stored, or a GPU `before` does not have) is compared with a healthy one, so a GPU already lost, with
    uncorrectable ECC errors or slowing down when monitoring starts is an event too: otherwise it would never page.
    """
    old = {g.index: g for g in before.gpus} if before is not None else {}
    events: list[Event] = []
    for gpu in after.gpus:
        prev = old.get(gpu.index)
        events.extend(xid_events(after.node, after.time, gpu, prev.xid_events if prev is not None else ()))
        baseline = prev if prev is not None else GpuSample(after.node, gpu.index)
        events.extend(_gpu_changes(after.node, after.time, baseline, gpu))
    return events


def xid_events(node: str, at: float, gpu: GpuSample, known: tuple[XidEvent, ...]) -> list[Event]:
    """One `xid` event per XID of `gpu` not in `known`, at the time the agent saw it (else `at`)."""
    if not gpu.xid_events:
        return []
    seen = set(known)
    return [
        Event(
            xid.time if xid.time is not None else at,
            "xid",
            f"{node}/{gpu.index}: XID {xid.xid}",
            node,
            gpu.index,
            "error",
        )
        for xid in gpu.xid_events
        if xid not in seen
    ]


class XidStamps:
    """How one node's XIDs were put on the controller's clock, so each keeps the time it was first given.

    A node whose clock is off has its samples re-stamped (telemetry/writer.py), and the XIDs in them must move with
    them. An agent lists a GPU's recent XIDs in every sample, and an XID is an event when the sample before does not
    list it (`xid_events`), so each XID is moved once, the first time it is listed, and keeps that time; one seen while
    the node was in step keeps its own. Otherwise a changing offset estimate would make the same XID new again.
    """

    def __init__(self) -> None:
        """Start with no XID seen."""
        self._stamped: dict[XidEvent, XidEvent] = {}  # as the agent lists it -> as stored; oldest first

    def restamp(self, sample: NodeSample, shift: float) -> NodeSample:
        """`sample` (already moved by `shift` seconds onto the controller's clock) with its XIDs moved too."""
        if not any(gpu.xid_events for gpu in sample.gpus):
            return sample
        gpus = tuple(replace(g, xid_events=tuple(self._moved(x, shift) for x in g.xid_events)) for g in sample.gpus)
        while len(self._stamped) > XIDS_STAMPED_PER_NODE:  # the oldest are long off the agent's list
            del self._stamped[next(iter(self._stamped))]
        return replace(sample, gpus=gpus)

    def _moved(self, xid: XidEvent, shift: float) -> XidEvent:
        stamped = self._stamped.get(xid)
        if stamped is None:
            at = xid.time + shift if xid.time is not None else None
            stamped = self._stamped[xid] = XidEvent(xid.xid, at)
        return stamped


def _gpu_changes(node: str, at: float, prev: GpuSample, gpu: GpuSample) -> list[Event]:
    out: list[Event] = []
    if gpu.ecc_uncorrected is not None and gpu.ecc_uncorrected > (prev.ecc_uncorrected or 0):
        out.append(
            Event(
                at,
                "ecc",
                f"{node}/{gpu.index}: uncorrectable ECC errors {gpu.ecc_uncorrected}",
                node,
                gpu.index,
                "error",
            )
        )
    lost_now = "gpu_lost" in gpu.null_reasons.values()
    lost_before = "gpu_lost" in prev.null_reasons.values()
    if lost_now and not lost_before:
        out.append(Event(at, "gpu_lost", f"{node}/{gpu.index}: GPU fell off the bus", node, gpu.index, "error"))
    elif lost_before and not lost_now:
        out.append(Event(at, "gpu_back", f"{node}/{gpu.index}: GPU is back", node, gpu.index, "info"))
    hot_now = THERMAL_REASONS.intersection(gpu.throttle_reasons)
    if hot_now and not THERMAL_REASONS.intersection(prev.throttle_reasons):
        reasons = ", ".join(sorted(hot_now))
        out.append(
            Event(at, "thermal", f"{node}/{gpu.index}: thermal slowdown ({reasons})", node, gpu.index, "warning")
        )
    return out


def carry_forward(before: NodeSample | None, after: NodeSample) -> NodeSample:
    """`after` with what its agent may have forgotten or cannot read kept from `before`.

    A restarted agent lists only the XIDs raised since it started: each GPU keeps the earlier ones too (the newest
    `MAX_XIDS`). A lost GPU reads nothing: it keeps its UUID and name, so its series and rows still say which board.
    """
    if before is None:
        return after
    old = {g.index: g for g in before.gpus}
    gpus = [_carry_gpu(old[gpu.index], gpu) if gpu.index in old else gpu for gpu in after.gpus]
    if all(new is gpu for new, gpu in zip(gpus, after.gpus, strict=True)):
        return after
    return replace(after, gpus=tuple(gpus))


def _carry_gpu(prev: GpuSample, gpu: GpuSample) -> GpuSample:
    changes: dict[str, Any] = {}
    if prev.xid_events:
        merged = tuple(dict.fromkeys((*prev.xid_events, *gpu.xid_events)))[-MAX_XIDS:]
        if merged != gpu.xid_events:
            changes["xid_events"] = merged
    if gpu.uuid is None and prev.uuid is not None and gpu.null_reasons.get("uuid") == "gpu_lost":
        changes.update(uuid=prev.uuid, name=prev.name)
        changes["null_reasons"] = {k: v for k, v in gpu.null_reasons.items() if k not in ("uuid", "name")}
    return replace(gpu, **changes) if changes else gpu


class ThermalEpisodes:
    """Keeps one `thermal` event per episode of slowdown, per GPU, from a stream of samples (a writer's or a view's).

    `gpu_events` compares two samples only, so a GPU that flickers in and out of slowdown would log an event each time.
    This remembers when each GPU was last seen slowing down and lets a new event through only after `THERMAL_COOL_S`
    without slowdown.
    """

    def __init__(self, cool_s: float = THERMAL_COOL_S) -> None:
        """Start with no GPU seen hot."""
        self.cool_s = cool_s
        self._last_hot: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()  # the dashboard's links call it from their own threads

    def keep(self, events: list[Event], sample: NodeSample) -> list[Event]:
        """`events` (found for `sample`) without the thermal ones that continue an episode; then note `sample`."""
        with self._lock:
            kept = [event for event in events if event.kind != "thermal" or self._new_episode(event, sample.time)]
            for gpu in sample.gpus:
                if THERMAL_REASONS.intersection(gpu.throttle_reasons):
                    self._last_hot[(sample.node, gpu.index)] = sample.time
        return kept

    def _new_episode(self, event: Event, at: float) -> bool:
        last = self._last_hot.get((event.node or "", event.gpu if event.gpu is not None else -1))
        return last is None or at - last >= self.cool_s
