"""Explicit power-limit requests (`power set / reset`): validated on every reachable GPU first, then applied.

An explicit request outside a GPU's min/max is refused with exit 2 and changes nothing, as `nvidia-smi -pl` does;
with `--clamp` it is clamped instead, and the clamp is recorded. A node that cannot be reached (or whose driver does
not answer) is reported and skipped rather than blocking the others, as in every fan-out command. Every change goes
to the audit log with before and after, whoever made it: a node whose driver fails part-way (GPU 2 lost after GPUs 0
and 1 were set) is an error that still brings the GPUs it changed, and those are recorded and listed like any other.
Each node's request is in the log before any node is asked, and its answer replaces it as it comes (`limit_audit`),
so a factoryctl killed with SIGKILL leaves the requests it never heard back on, never an unrecorded change. Answers
the store refuses (a disk filled meanwhile) raise `LimitsNotRecorded`, with what the nodes did, for the CLI to say.

A node's agent session that read its GPUs is kept open for its change (`HeldSessions`): over SSH a session is a
login, so a node is logged into once, not twice. Every node is read before any change (the range rule is
all-or-nothing), so a held session waits for the whole read; at most as many are held as the fan-out works on at
once, and the nodes past that (a target larger than `--fanout`) are read first and start a second session for their
change, so no more sessions are ever open than the fan-out allows. `power apply` gives the sessions of its own read
(`held`). A cancel event (the controller's stop) stops a request as Ctrl-C does, and ends the agents still asked.
What a node's answer says (`LimitChange`, a timeout said as whether a limit may have changed) is limit_answers.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError, UsageError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.power.held_sessions import HeldSessions
from factoryctl.power.limit_answers import NO_LIMIT_CHANGED as NO_LIMIT_CHANGED  # the CLI's closing line reads it
from factoryctl.power.limit_answers import LimitChange as LimitChange  # every caller's name for it
from factoryctl.power.limit_answers import Unconfirmed as Unconfirmed  # what the CLI counts as `may have changed`
from factoryctl.power.limit_answers import limit_changes as limit_changes  # the dashboard's cap reads with it
from factoryctl.power.limit_answers import malformed_answer as malformed_answer
from factoryctl.power.limit_answers import partly_changed as partly_changed
from factoryctl.power.limit_answers import step_timed_out
from factoryctl.power.limit_audit import RequestTrail, close_abandoned
from factoryctl.power.limit_audit import record_audit as record_audit  # the dashboard's cap records with it
from factoryctl.power.limit_checks import LimitsRefused, check_gpus, check_range, check_watts
from factoryctl.power.limit_progress import CHANGING, READING, RESETTING, LimitProgress
from factoryctl.power.limit_progress import settled as _settled  # tests call it by this name too
from factoryctl.store.connection import StoreError
from factoryctl.store.held_signals import signals_held
from factoryctl.telemetry.poll import check_agent_cache
from factoryctl.transport.fanout import DEFAULT_FANOUT, Cancelled, FanOut, Pending, fan_out, within_file_limit
from factoryctl.transport.session import AgentSession, PartlyDone

if TYPE_CHECKING:
    from factoryctl.store.sqlite import Store


def _validate(
    nodes: list[NodeSpec],
    gpus: list[int] | None,
    watts: float | None,
    fanout: int,
    held: HeldSessions,
    told: LimitProgress,
) -> tuple[list[NodeSpec], list[NodeError]]:
    """Read the reachable nodes' GPUs and refuse the request if one lacks a GPU or (given `watts`) its range.

    Returns the nodes that answered and the errors of those that did not; a refusal comes with those errors
    (`LimitsRefused`), so they are said after it, not hidden by it. The first nodes, as many as the fan-out
    works on at once, keep their sessions for the change (`held`); the others are read before them, each session
    closed at once, so no more are ever open than the fan-out allows.
    """
    outcomes, _ = read_holding(held, nodes, fanout, told.of(READING, 0, len(nodes)))
    samples = [s for s in outcomes if isinstance(s, NodeSample)]  # in inventory order
    failed = [e for e in outcomes if isinstance(e, NodeError)]
    errors = [step_timed_out(error, held.timeout) for error in failed]
    try:
        check_gpus(samples, gpus)
        if watts is not None:
            check_range(samples, gpus, watts)
    except UsageError as refusal:
        if not errors:
            raise
        raise LimitsRefused(refusal, errors) from None
    failed_names = {error.node for error in failed}
    return [node for node in nodes if node.name not in failed_names], errors


def read_holding(
    held: HeldSessions, nodes: list[NodeSpec], fanout: int, progress: Callable[[int, int], None] | None = None
) -> tuple[list[NodeSample | NodeError], list[str]]:
    """Each node's sample or error in `nodes`' order, and the nodes whose session is kept for their change (`held`).

    The first nodes, as many as the fan-out works on at once, keep their sessions; the others are read before them,
    each session closed at once, so no more are ever open than the fan-out allows. `progress(done, total)`.
    """
    keep = within_file_limit(nodes, fanout)
    read_once, read_and_hold = nodes[keep:], nodes[:keep]

    def after(before: int) -> Callable[[int, int], None] | None:
        return None if progress is None else lambda done, _: progress(before + done, len(nodes))

    outcomes = fan_out(read_once, held.read_only, fanout, progress=after(0))
    outcomes += fan_out(read_and_hold, held.read_and_hold, fanout, progress=after(len(read_once)))
    by_name = {node.name: outcome for node, outcome in outcomes}
    kept = [node.name for node in read_and_hold if isinstance(by_name[node.name], NodeSample)]
    return [by_name[node.name] for node in nodes], kept


class LimitsInterrupted(BaseException):
    """The request was interrupted (Ctrl-C, SIGTERM: the `cause`) while nodes were changing their limits.

    The nodes asked before it are given a moment to answer; what they changed is in `changes` and in the audit log,
    and a node that had not answered is an `interrupted` error (`Unconfirmed`: its limits may have changed); its agent
    is killed on the CLI's way out (transport/node_leftovers.py), so nothing changes after the command ended. A
    BaseException, like the interrupt itself, so no `except Exception` on the way takes it for a failure.
    """

    def __init__(self, changes: list[LimitChange], errors: list[NodeError], cause: BaseException) -> None:
        super().__init__(changes, errors, cause)
        self.changes, self.errors, self.cause = changes, errors, cause


class LimitsNotRecorded(StoreError):
    """Limits changed that the audit log could not record (a disk full mid-command), with what the request did.

    `changes`, `errors`, and the interrupt that came meanwhile (`stopped`): the StoreError of `trail.finish` threw
    them away, and the command said one sentence, not which GPUs changed nor which nodes failed. A StoreError still,
    with the store's message and hint, so a caller that does not look at `changes` says the failure as before.
    """

    def __init__(
        self, error: StoreError, changes: list[LimitChange], errors: list[NodeError], stopped: BaseException | None
    ) -> None:
        super().__init__(error.message, error.hint)
        self.changes, self.errors, self.stopped = changes, errors, stopped


#: Seconds an interrupted request still waits for the nodes it asked (a limit is set in milliseconds once asked).
SETTLE_S = 5.0
#: Seconds a stop by `cancel` (the controller's) waits for the nodes it asked: a healthy node answers in milliseconds,
#: and a hung one is not waited out (its agent is ended: `_end_unanswered`).
CANCEL_SETTLE_S = 1.0
#: Message of a node still changing its limits when the request was interrupted and stopped waiting for it.
UNANSWERED = "interrupted before this node answered: its limits may have changed (see `factoryctl gpus`)"
#: A node never asked when the request was interrupted (the fan-out had not got to it, or its session was still
#: opening): nothing changed there.
NOT_ASKED = "interrupted before this node was asked: its limits were not changed"


def _change_all(
    held: HeldSessions,
    targets: list[NodeSpec],
    change: tuple[list[int] | None, float | None, bool],
    fanout: int,
    trail: RequestTrail,
    told: LimitProgress,
    cancel: tuple[threading.Event | None, dict[str, AgentSession]],
) -> tuple[list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]], BaseException | None]:
    """Each target's outcome of `change` (gpus, watts, clamp) in `targets`' order, and the interrupt that came, if any.

    A held session's node starts first, so no more than `fanout` sessions are open; on Ctrl-C or SIGTERM the nodes
    already asked are given `SETTLE_S` (at most the timeout) to answer, as their limits may have changed, and `told`
    that they are waited for; a node whose session was still opening is not asked any more, nor waited for. Each
    node's answer goes to the audit log (`trail`) as it comes. `cancel`: the event that stops it as an interrupt
    does (a controller's stop: `Cancelled`, waiting `CANCEL_SETTLE_S` only), and the sessions asked, by node, until
    each answers (the agents such a stop ends).
    """
    answers: dict[str, _NodeChanges] = {}  # by node, as each answers: its session's close takes a while after
    event, in_use = cancel
    pool = FanOut(
        held.held_first(targets), lambda node: _change(held, node, change, trail, (answers, in_use)), fanout, event
    )
    interrupt: BaseException | None = None
    try:
        step = RESETTING if change[1] is None else CHANGING
        outcomes: list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]] = list(pool.run(told.of(step)))
    except BaseException as stop:
        trail.stop_asking()  # a node still connecting is never asked now: nothing to wait for there
        within = min(held.timeout, CANCEL_SETTLE_S if isinstance(stop, Cancelled) else SETTLE_S)
        interrupt, outcomes = stop, _settled(pool, within, stop, told, answers, trail.was_asked)
    order = {node.name: i for i, node in enumerate(targets)}
    return sorted(outcomes, key=lambda outcome: order[outcome[0].name]), interrupt


def apply_limit(
    config: FactoryConfig,
    nodes: Sequence[NodeSpec],
    gpus: list[int] | None,
    watts: float | None,
    clamp: bool,
    timeout: float,
    reason: str | None = None,
    fanout: int = DEFAULT_FANOUT,
    told: LimitProgress | None = None,
    held: HeldSessions | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[LimitChange], list[NodeError]]:
    """Set (or with `watts=None` reset to default) the limits on every node that answers; `reason` goes in the audit.

    Every addressed GPU of the reachable nodes must exist, and unless clamping every range must take the value,
    before anything changes; a node that cannot be read is reported in the errors and left alone. The audit log is
    opened, and a probe entry written and rolled back, before any node is contacted, and each node's request written
    before any is asked: a store that cannot record the change (read-only, held by another writer, full) refuses the
    request with nothing changed. Each answer replaces its request as it comes (`RequestTrail`). An interrupt once
    the change step began, up to the store's close, raises `LimitsInterrupted` with what did change, recorded; one
    before it is raised as it came (nothing changed). At most `fanout` nodes at once; `told` hears how it goes.
    `held`: the sessions that read the nodes (`power apply`'s), taken for their change, the rest left to the caller.
    `cancel` set (the controller's stop) stops it as an interrupt would, `LimitsInterrupted` with `Cancelled`.
    """
    from factoryctl.store import open_store

    check_watts(watts)
    check_agent_cache(nodes)
    store = open_store(config.store_path)
    sessions = HeldSessions(config, timeout) if held is None else held
    own = sessions if held is None else None
    try:
        ask, progress = (gpus, watts, clamp), told or LimitProgress()
        changes, errors, interrupt = _requested(store, sessions, nodes, ask, (reason, cancel), fanout, progress)
    except BaseException:
        _closed(own, store)  # a refused request's sessions; an interrupt meanwhile changes nothing of its outcome
        raise
    closing = _closed(own, store)  # an interrupt now came after the nodes answered: what they did stands
    stopped = interrupt or closing
    if stopped is not None:
        raise LimitsInterrupted(changes, errors, stopped)
    return changes, errors


def _requested(
    store: Store,
    held: HeldSessions,
    nodes: Sequence[NodeSpec],
    ask: tuple[list[int] | None, float | None, bool],
    why: tuple[str | None, threading.Event | None],
    fanout: int,
    told: LimitProgress,
) -> tuple[list[LimitChange], list[NodeError], BaseException | None]:
    """`apply_limit`'s checks, its requests in the audit log, the change and its answers; the interrupt that came.

    An interrupt before the requests are in the log is raised: no node was asked. Answers the store refused raise
    `LimitsNotRecorded`, with the changes and errors. `why`: the audit's reason, and the cancel event.
    """
    reason, cancel = why
    in_use: dict[str, AgentSession] = {}
    targets, errors = _checked_targets(store, held, nodes, ask, fanout, told)
    trail = RequestTrail(store, "reset" if ask[1] is None else "set", ask[1], reason, told.note)
    try:
        interrupt = _written_whole(lambda: trail.announce([node.name for node in targets], ask[0]))
    except StoreError as error:
        raise nothing_changed(error) from None
    outcomes: list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]] = []
    if interrupt is None:  # else no node is asked, and `finish` drops every request
        outcomes, interrupt = _change_all(held, targets, ask, fanout, trail, told, (cancel, in_use))
    changes = _gathered(outcomes, errors)
    try:
        finished = _written_whole(trail.finish)  # the limits changed: what is left of their entries is written whole
    except StoreError as error:  # what the nodes did is said all the same, then the audit failure
        raise LimitsNotRecorded(error, changes, errors, interrupt) from error
    finally:
        if isinstance(interrupt, Cancelled):
            _end_unanswered(in_use)
    return changes, errors, interrupt or finished


def _end_unanswered(in_use: dict[str, AgentSession]) -> None:
    """A stop's end of the agents still asked (a node hung mid-change), their requests left in the audit log.

    Each is ended now (asked to exit, else killed), within `END_WITHIN_S` for all: one that outlived the controller
    could still take its node's limits lock and set a limit nobody would hear of, or keep the lock held. Called once
    the trail is finished, so the session's failure is no answer written over the request (outcome unknown).
    """
    from factoryctl.transport.node_leftovers import END_WITHIN_S

    sessions = list(in_use.copy().values())
    ending = [threading.Thread(target=s.close, args=(0.0,), daemon=True, name="end-unanswered") for s in sessions]
    for thread in ending:
        thread.start()
    deadline = time.monotonic() + END_WITHIN_S
    for thread in ending:
        thread.join(max(0.0, deadline - time.monotonic()))


def _closed(held: HeldSessions | None, store: Store) -> BaseException | None:
    """Close the sessions still held (a refused or interrupted request's; None: the caller's), then the store.

    An interrupt meanwhile is returned, not raised: coming after every node answered, it must not pass for one that came before any was
    asked (64 GPUs changed and audited were said as `no power limit was changed`). The sessions' close stays
    interruptible (each asks its agent to exit, a hung one included); the store's, quick, is done whole.
    """
    interrupted: BaseException | None = None
    try:
        if held is not None:
            held.close_all()
    except BaseException as stop:
        if isinstance(stop, Exception):
            raise
        interrupted = stop
    finally:
        closing = _written_whole(store.close)
    return interrupted or closing


def _checked_targets(
    store: Store,
    held: HeldSessions,
    nodes: Sequence[NodeSpec],
    ask: tuple[list[int] | None, float | None, bool],
    fanout: int,
    told: LimitProgress,
) -> tuple[list[NodeSpec], list[NodeError]]:
    """The nodes to change, and those refused: the store must take the audit first, then every GPU and range."""
    gpus, watts, clamp = ask
    _audit_ready(store, told)
    targets, errors = list(nodes), list[NodeError]()
    range_checked = watts is not None and not clamp
    if range_checked or gpus is not None:
        targets, errors = _validate(targets, gpus, watts if range_checked else None, fanout, held, told)
    return targets, errors


def _audit_ready(store: Store, told: LimitProgress) -> None:
    """The store must take the audit (else nothing changed); what a killed command left `unknown` is closed first."""
    try:
        store.check_audit_writable()
    except StoreError as error:
        raise nothing_changed(error) from None
    close_abandoned(store, told.note)  # what a killed command left `unknown`: said before this one asks any node


def check_audit_ready(config: FactoryConfig, told: LimitProgress | None = None) -> None:
    """`apply_limit`'s first step for a request that asks no node (`power apply` with every GPU at its plan).

    Such a run still refuses, as one that asks nodes does, when the store cannot record a change (read-only, full):
    cron's run at plan says the broken audit log at once, not at the next price step.
    """
    from factoryctl.store import open_store

    store = open_store(config.store_path)
    try:
        _audit_ready(store, told or LimitProgress())
    finally:
        _written_whole(store.close)


def _written_whole(write: Callable[[], None]) -> BaseException | None:
    """Run `write` with Ctrl-C, SIGTERM and SIGHUP held; the interrupt that came meanwhile, if any (it counts now)."""
    try:
        with signals_held():
            write()
    except BaseException as stop:
        if isinstance(stop, Exception):
            raise
        return stop
    return None


def nothing_changed(error: StoreError) -> StoreError:
    """`error`, a store's refusal of a request's audit entries before any node was asked, saying nothing changed.

    The store's own words say only that the entry was not saved, which read as if the change went through unaudited.
    """
    error.message = f"{error.message.rstrip('.')}; no power limit was changed."
    error.args = (error.message,)
    return error


#: What one node did: the GPUs it changed, and its error when it failed part-way (None when it did them all).
_NodeChanges = tuple[list[LimitChange], NodeError | None]


def _gathered(
    outcomes: list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]], errors: list[NodeError]
) -> list[LimitChange]:
    """The changes the nodes made; their failures, and `interrupted` for a node that had not answered, to `errors`.

    A node whose change never started (the fan-out was left before it got there) was not asked: said so, not "may
    have changed".
    """
    changes: list[LimitChange] = []
    for node, outcome in outcomes:
        if isinstance(outcome, Pending):
            if outcome is Pending.NOT_STARTED:
                errors.append(NodeError(node.name, "interrupted", NOT_ASKED))
            else:
                errors.append(Unconfirmed(node.name, "interrupted", UNANSWERED))
        elif isinstance(outcome, NodeError):
            errors.append(outcome)
        else:
            changes.extend(outcome[0])
            if outcome[1] is not None:
                errors.append(outcome[1])
    return changes


def _change(
    held: HeldSessions,
    node: NodeSpec,
    change: tuple[list[int] | None, float | None, bool],
    trail: RequestTrail,
    kept: tuple[dict[str, _NodeChanges], dict[str, AgentSession]],
) -> _NodeChanges:
    """Ask one node's agent to set (or reset) the limits; its answers, GPU by GPU, and its error if it failed part-way.

    The agent is the session that read the node's GPUs when it is still held, else a new one. The answer replaces
    the node's request in the audit log, and is in `answers`, before the session is closed (which takes a while);
    the session is in `in_use` while it is asked. `kept`: (answers, in_use).
    """
    answers, in_use = kept
    asked: str | None = None  # set once the request goes out: from then on the limit may change
    try:
        with held.session_for(node) as session:
            asked = "reset" if change[1] is None else "change"
            in_use[node.name] = session
            try:
                answers[node.name] = _ask(session, node.name, change, held.timeout, trail)
            finally:
                in_use.pop(node.name, None)
            return answers[node.name]
    except NodeError as error:
        raise step_timed_out(error, held.timeout, asked) from error


def _ask(
    session: AgentSession,
    node: str,
    change: tuple[list[int] | None, float | None, bool],
    timeout: float,
    trail: RequestTrail,
) -> _NodeChanges:
    """`_change`'s request on an open session, its answer recorded at once; an error reply records that none changed.

    An error without a reply (no answer in time, the connection lost) leaves the node's request in the log: its
    limits may have changed.
    """
    gpus, watts, clamp = change
    outcome: _NodeChanges
    trail.asking(node)
    try:
        if watts is None:
            answers = session.reset_power_limit(gpus, timeout)
        else:
            answers = session.set_power_limit(watts, gpus, clamp, timeout)
    except PartlyDone as failed:
        outcome = partly_changed(failed)
    except (NodeError, UsageError) as error:
        if isinstance(error, UsageError) or (error.kind != "timeout" and session.failure is None):
            trail.answered(node, [])  # the agent refused the request: nothing changed
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a reply's `result` that is no object
        raise malformed_answer(node, exc) from None
    else:
        outcome = limit_changes(node, answers), None
    trail.answered(node, outcome[0])
    return outcome
