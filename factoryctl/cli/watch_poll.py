"""`--watch`'s rounds of asking the nodes: one node that does not answer never holds the redraws of the others.

A round used to ask every node and wait for the last: a node whose link went half-open held every redraw until its
connect timeout or `--timeout` ran out (a network review saw 16 s with no redraw at all, the healthy nodes' rows
frozen too, and not a word about the node). Here each node is asked on a thread of its own, one ask at a time per node
and `--fanout` nodes at once, and a round waits for the answers at most its interval (`ROUND_FLOOR_S` at least,
about what a node takes to answer over SSH, so a short interval does not call every node slow; the first round
`FIRST_ROUND_S`). A node whose own ask has then run `ROUND_FLOOR_S` or more is slow: it is shown from its last answer
with an error that says so (`no answer for 4 s (still being asked); its rows are its reading of
2026-11-24T14:47:58.120Z`), or as `no answer yet` when it never answered; its ask goes on, and what it brings (an
answer, or why it failed) shows at the first redraw after. A node only waiting for a `--fanout` slot, or whose ask
began less than that ago, is not slow: when a pass over a big fleet outlasts the round it keeps its last rows as they
were, no error (a review saw healthy nodes `degraded`, `timeout` on stderr, at every redraw), and one not heard from
yet is left out of the redraw (no `gpus` rows, a `connecting` `nodes` row) until its answer comes.
Nodes that do not answer must not hold the queue either: with `--fanout 2` and two hung sshds the healthy nodes behind
them were never asked until those asks ran out (`--timeout`), their rows redrawn unchanged as if fresh. So a slow ask
steps aside: it gives its `--fanout` place to a node waiting for one and goes on outside the count, up to `--fanout`
such asks (fewer if the open-file limit has no room for them), so at most twice `--fanout` asks are under way, each
node's one at a time. Past that the queue can still be held: a node that has waited `ROUND_FLOOR_S` or more while
every place is held by a slow ask is shown as a slow node is (its last rows `degraded`, a `timeout` error saying it
waits its turn), never as fresh.
With a live controller the store answers at once (telemetry/current.py) and only the nodes it cannot answer for are
asked this way. `gpus --watch` and `nodes --watch` both ask this way (`asker`); without `--watch` a listing asks once
and waits for every node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from factoryctl.cli.progress import replay_progress
from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.model.timefmt import iso_utc
from factoryctl.stale_code import freeze_code
from factoryctl.telemetry.latest import read_live
from factoryctl.telemetry.poll import PollResult, as_node_error, check_agent_cache, down_sample, sample_node
from factoryctl.transport.fanout import LARGE_FANOUT, within_file_limit
from factoryctl.transport.hints import hinted
from factoryctl.transport.host_limits import is_thread_exhaustion, raise_open_file_limit, thread_limit_error

#: A round waits for its answers its interval, and at least this long (seconds).
ROUND_FLOOR_S = 1.0
#: The first round waits at least this long: it pays once for what later rounds find ready (the transports' imports,
#: a local agent's first start, the agent's upload to an SSH node's cache), so its screen is not all `no answer yet`.
FIRST_ROUND_S = 3.0
#: How often a round's wait looks again (Ctrl-C, the progress line).
_SLICE_S = 0.2
SLOW_HINT = (
    "what it answers, or why it failed, shows at the first redraw after it comes; `factoryctl nodes check {node}` "
    "tests its link step by step."
)
HELD_HINT = (
    "the nodes that do not answer hold every `--fanout` place until they answer or `--timeout` ends; a larger "
    "`--fanout`, or a shorter `--timeout`, lets the others be asked sooner."
)


def asker(
    config: FactoryConfig, nodes: Sequence[NodeSpec], timeout: float, fanout: int, quiet: bool, watch: float | None
) -> Callable[[], PollResult]:
    """How each redraw of a listing (`gpus`, `nodes`) asks `nodes`: the shared set-up of both.

    Without `--watch` (`watch` None) once, every node waited for (`listing.asked`); with it (`watch` its interval) in
    `WatchPoll` rounds, so a node that does not answer never holds the others' rows.
    """
    if watch is None:
        from factoryctl.cli.listing import asked

        return lambda: asked(config, nodes, timeout, fanout, quiet)
    rounds = WatchPoll(config, nodes, timeout, fanout, watch)
    return lambda: rounds.round(quiet)


@dataclass
class _Asking:
    """One node's asking: its newest outcome and when it came (wall clock), and its ask in flight, if any."""

    outcome: NodeSample | NodeError | None = None
    answered_at: float = 0.0
    in_flight: bool = False
    #: When its ask in flight was wanted (monotonic), its turn or not.
    asked: float = 0.0
    #: When its ask in flight got its turn (monotonic); None while it waits for one of the `--fanout` slots.
    started: float | None = None
    #: Its ask, slow, gave its `--fanout` slot to a node waiting for one (`WatchPoll._step_aside`).
    aside: bool = False

    def slow(self, now: float) -> bool:
        """Whether its own ask has run `ROUND_FLOOR_S` or more: in a whole round it could have answered, it did not."""
        return self.in_flight and self.started is not None and now - self.started >= ROUND_FLOOR_S

    def held(self, now: float) -> bool:
        """Whether it has waited `ROUND_FLOOR_S` or more for a slot (said only while slow asks hold them all)."""
        return self.in_flight and self.started is None and now - self.asked >= ROUND_FLOOR_S


class WatchPoll:
    """The nodes' samples for each `--watch` redraw (`round`), never waiting past the round's bound for any node."""

    def __init__(
        self, config: FactoryConfig, nodes: Sequence[NodeSpec], timeout: float, fanout: int, interval: float
    ) -> None:
        """Ask `nodes` with `timeout` each, `fanout` at once; a round waits `interval` at most (`ROUND_FLOOR_S`)."""
        self._config, self._nodes, self._timeout = config, list(nodes), timeout
        freeze_code()  # it runs for hours: an upgrade under it must not be imported, nor its agent shipped
        check_agent_cache(self._nodes)  # one config error (exit 3) before any round, as a poll says it
        if min(len(self._nodes), fanout) > LARGE_FANOUT:
            raise_open_file_limit()
        self._fanout = within_file_limit(self._nodes, fanout)
        self._slots = threading.BoundedSemaphore(self._fanout)
        #: How many slow asks may go on outside the slots (`_step_aside`): `--fanout` more, as the file limit allows.
        self._spare = max(0, within_file_limit(self._nodes, 2 * self._fanout) - self._fanout)
        self._aside = 0
        self._changed = threading.Condition()
        self._asking = {spec.name: _Asking() for spec in self._nodes}
        self.wait_s = max(interval, ROUND_FLOOR_S)
        self._rounds = 0

    def round(self, quiet: bool) -> PollResult:
        """The samples of this redraw, in inventory order, and the nodes' errors (a progress line unless `quiet`).

        From a live controller's store when there is one; the nodes it does not answer for, or all without it, from
        their own answers: fresh from this round, or the last one with the error of a node still being asked.
        """
        unknown: list[NodeSpec] = []
        live = read_live(self._config, self._nodes, unknown=unknown)
        if live is not None and not unknown:
            return live
        asked = self._ask(self._nodes if live is None else unknown, quiet)
        if live is None:
            return asked
        order = {spec.name: place for place, spec in enumerate(self._nodes)}
        samples = sorted([*live.samples, *asked.samples], key=lambda s: order[s.node])
        errors = sorted([*live.errors, *asked.errors], key=lambda e: order[e.node])
        return PollResult(samples, errors, live.last_seen)

    def _ask(self, nodes: Sequence[NodeSpec], quiet: bool) -> PollResult:
        """Ask every node of `nodes` not being asked already; wait until all answered or the round's bound passed.

        The bound counts from after the asks started: an ask that got its slot at once has run the whole round, at
        least `ROUND_FLOOR_S`, when the round ends, and so is called slow if it has not answered (`_Asking.slow`).
        """
        for spec in nodes:
            self._start(spec)
        deadline = time.monotonic() + (self.wait_s if self._rounds else max(self.wait_s, FIRST_ROUND_S))
        self._rounds += 1
        with replay_progress("asking the nodes", quiet, unit="nodes done") as line, self._changed:
            while True:
                self._step_aside(time.monotonic())
                waiting = sum(1 for spec in nodes if self._asking[spec.name].in_flight)
                if line is not None:
                    line(len(nodes) - waiting, len(nodes))
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    break
                self._changed.wait(min(left, _SLICE_S))
            now = time.monotonic()
            self._step_aside(now)
            found = {spec.name: replace(self._asking[spec.name]) for spec in nodes}
            held = self._held_up(now)
        return self._result(nodes, found, now, held)

    def _step_aside(self, now: float) -> None:
        """Slow asks give their slots to the nodes waiting for one, while fewer than `_spare` asks are set aside.

        Called with `_changed` held. A slow ask is a node that does not answer (a hung sshd, a link gone half-open):
        it would hold its slot until `--timeout` ends, and the healthy nodes queued behind would go unasked.
        """
        if self._aside >= self._spare:
            return
        queued = sum(1 for asking in self._asking.values() if asking.in_flight and asking.started is None)
        for asking in self._asking.values():
            if min(queued, self._spare - self._aside) <= 0:
                return
            if asking.slow(now) and not asking.aside:
                asking.aside, self._aside, queued = True, self._aside + 1, queued - 1
                self._slots.release()

    def _held_up(self, now: float) -> bool:
        """Whether every slot is held by a slow ask (none left to set aside): a node waiting for one waits for them."""
        return sum(1 for a in self._asking.values() if a.slow(now) and not a.aside) >= self._fanout

    def _start(self, spec: NodeSpec) -> None:
        """Ask `spec` on a thread of its own, unless its last ask is still going; a free slot is taken here, at once."""
        with self._changed:
            asking = self._asking[spec.name]
            if asking.in_flight:
                return
            held = self._slots.acquire(blocking=False)
            asking.in_flight, asking.asked, asking.aside = True, time.monotonic(), False
            asking.started = asking.asked if held else None
        try:
            threading.Thread(target=self._one, args=(spec, held), daemon=True, name=f"watch-{spec.name}").start()
        except RuntimeError as exc:
            if held:
                self._slots.release()
            if not is_thread_exhaustion(exc):
                raise
            self._answered(spec.name, thread_limit_error(spec.name), False)

    def _one(self, spec: NodeSpec, held: bool) -> None:
        """One ask of `spec` (in its turn among the `--fanout` slots, `held` if taken already), its outcome kept."""
        if not held:
            self._slots.acquire()
            with self._changed:
                self._asking[spec.name].started = time.monotonic()
        outcome: NodeSample | NodeError | None = None
        try:
            outcome = sample_node(spec, self._config, self._timeout)
        except Exception as exc:
            outcome = as_node_error(spec.name, exc)
        finally:
            self._answered(spec.name, outcome, True)

    def _answered(self, node: str, outcome: NodeSample | NodeError | None, slot: bool) -> None:
        """Keep `node`'s outcome (None: none came); give back the slot its ask held (`slot`), or its place aside."""
        with self._changed:
            asking = self._asking[node]
            if slot and asking.aside:
                self._aside -= 1
            elif slot:
                self._slots.release()
            if outcome is not None:
                asking.outcome, asking.answered_at = outcome, time.time()
            asking.in_flight, asking.started, asking.aside = False, None, False
            self._changed.notify_all()

    def _result(self, nodes: Sequence[NodeSpec], found: dict[str, _Asking], now: float, held: bool) -> PollResult:
        """Each node's row and error, as a poll gives them; a slow node, or one `held` up behind slow ones, as `_old`.

        A node not slow (waiting for its slot, or asked a moment ago) shows its last outcome as it was: nothing when it
        was never heard from.
        """
        samples: list[NodeSample] = []
        errors: list[NodeError] = []
        for spec in nodes:
            asking = found[spec.name]
            outcome = asking.outcome
            if isinstance(outcome, NodeError):  # its newest word, even while it is asked again
                errors.append(hinted(outcome))
                samples.append(down_sample(spec.name, outcome, self._config.interval_s))
            elif asking.slow(now) or (held and asking.held(now)):
                sample, error = self._old(spec.name, asking, now)
                if sample is None:  # never heard from: a row as a poll gives a node that failed
                    sample = down_sample(spec.name, error, self._config.interval_s)
                samples.append(sample)
                errors.append(error)
            elif outcome is not None:
                samples.append(outcome)
        return PollResult(samples, errors)

    def _old(self, node: str, asking: _Asking, now: float) -> tuple[NodeSample | None, NodeError]:
        """A node not heard from for too long: its last sample (`degraded`, as silence makes it) and why it is old.

        Its own ask is slow, or it is still waiting for a slot that slow asks hold. A node never heard from has no
        sample: its error, `no answer yet`, is its row (`down`, as a poll's failure).
        """
        if asking.started is None:
            waited = f"{now - asking.asked:.0f} s"
            why = f"waiting {waited} for its turn, every place of --fanout {self._fanout} held by a node that does not answer"
            hint, never = HELD_HINT, f"no answer yet (not asked yet: {why})."
            said = f"not asked again yet: {why}"
        else:
            waited = f"{now - asking.started:.0f} s"
            hint, never = SLOW_HINT.format(node=node), f"no answer yet (asked {waited} ago, still being asked)."
            said = f"no answer for {waited} (still being asked)"
        if not isinstance(asking.outcome, NodeSample):
            return None, NodeError(node, "timeout", never, hint)
        said = f"{said}; its rows are its reading of {iso_utc(asking.answered_at)}."
        return _kept(asking.outcome), NodeError(node, "timeout", said, hint)


def _kept(outcome: NodeSample | NodeError | None) -> NodeSample | None:
    """A node's last sample shown while it is asked again: `degraded`, as a silent node is (health.py)."""
    return replace(outcome, state="degraded") if isinstance(outcome, NodeSample) else None
