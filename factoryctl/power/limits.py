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
change, so no more sessions are ever open than the fan-out allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError, UsageError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import MAX_GPU_INDEX, NodeSample, number_or_none
from factoryctl.power.held_sessions import HeldSessions
from factoryctl.power.limit_audit import RequestTrail, close_abandoned
from factoryctl.power.limit_audit import record_audit as record_audit  # the dashboard's cap records with it
from factoryctl.power.limit_checks import LimitsRefused, check_gpus, check_range, check_watts
from factoryctl.power.limit_progress import CHANGING, READING, RESETTING, LimitProgress
from factoryctl.power.limit_progress import settled as _settled  # tests call it by this name too
from factoryctl.store.connection import StoreError
from factoryctl.store.held_signals import signals_held
from factoryctl.telemetry.poll import check_agent_cache
from factoryctl.transport.base import CommandCut
from factoryctl.transport.fanout import DEFAULT_FANOUT, FanOut, Pending, fan_out, within_file_limit
from factoryctl.transport.session import AgentSession, PartlyDone

if TYPE_CHECKING:
    from factoryctl.store.sqlite import Store


@dataclass(frozen=True)
class LimitChange:
    """One GPU's limit before and after a request."""

    node: str
    gpu: int
    before_w: float | None
    enforced_w: float | None  # None: the GPU changed, but could not say to what (lost right after its set)
    clamped: bool


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
    keep = within_file_limit(nodes, fanout)
    read_once, read_and_hold = nodes[keep:], nodes[:keep]
    outcomes = fan_out(read_once, held.read_only, fanout, progress=told.of(READING, 0, len(nodes)))
    outcomes += fan_out(
        read_and_hold, held.read_and_hold, fanout, progress=told.of(READING, len(read_once), len(nodes))
    )
    by_name = {node.name: outcome for node, outcome in outcomes}
    samples = [s for s in (by_name[n.name] for n in nodes) if isinstance(s, NodeSample)]  # in inventory order
    failed = [e for e in (by_name[n.name] for n in nodes) if isinstance(e, NodeError)]
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


#: How a node's timeout before its request went out ends (`step_timed_out`): the CLI then does not say it again.
NO_LIMIT_CHANGED = "; no limit was changed"


class Unconfirmed(NodeError):
    """A node asked to change its limits that never answered (a timeout, a stop): they may have changed, or not.

    Its own class, so the closing sentence counts it (`may have changed`), never saying `no power limit was changed`
    under a node whose line says its limits may have.
    """


def step_timed_out(error: NodeError, timeout: float, asked: str | None = None) -> NodeError:
    """`error` as power set's own timeout, saying whether a limit may have changed; other errors unchanged.

    Before the request went out (`asked` None) no limit was changed: the node's own sentence says what timed out (a
    TCP connect, the agent's hello or sample), and the hint table (`hints.node_error_hint`) what to do about it, so a
    connect timeout names ssh.connect_timeout_s, not --timeout. Only a command's timeout (the agent's check or
    upload over SSH) is reworded: exec's words for it say the command may still be running. Once the agent was asked
    to `asked` ("change", "reset") the limit may have changed, and only reading it again tells.
    """
    from factoryctl.transport.hints import node_error_hint

    if error.kind != "timeout":
        return error
    if asked is not None:
        return Unconfirmed(
            error.node,
            "timeout",
            f"the agent did not answer the {asked} within {timeout:g} s: the limit may have changed",
            f"check with `factoryctl gpus {error.node}`; on a loaded node, give the command a longer --timeout.",
        )
    said = error.message.removeprefix(f"{error.node}: ").rstrip(".")
    if isinstance(error, CommandCut):  # exec's words ("command did not finish ... may still be running")
        said = f"a command checking or uploading the agent did not finish within {timeout:g} s"
    hint = node_error_hint(error.node, "timeout", said)
    return NodeError(error.node, "timeout", f"{said}{NO_LIMIT_CHANGED}", hint)


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
) -> tuple[list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]], BaseException | None]:
    """Each target's outcome of `change` (gpus, watts, clamp) in `targets`' order, and the interrupt that came, if any.

    A held session's node starts first, so no more than `fanout` sessions are open; on Ctrl-C or SIGTERM the nodes
    already asked are given `SETTLE_S` (at most the timeout) to answer, as their limits may have changed, and `told`
    that they are waited for; a node whose session was still opening is not asked any more, nor waited for. Each
    node's answer goes to the audit log (`trail`) as it comes.
    """
    answers: dict[str, _NodeChanges] = {}  # by node, as each answers: its session's close takes a while after
    pool = FanOut(held.held_first(targets), lambda node: _change(held, node, change, trail, answers), fanout)
    interrupt: BaseException | None = None
    try:
        step = RESETTING if change[1] is None else CHANGING
        outcomes: list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]] = list(pool.run(told.of(step)))
    except BaseException as stop:
        trail.stop_asking()  # a node still connecting is never asked now: nothing to wait for there
        interrupt, outcomes = stop, _settled(pool, min(held.timeout, SETTLE_S), stop, told, answers, trail.was_asked)
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
) -> tuple[list[LimitChange], list[NodeError]]:
    """Set (or with `watts=None` reset to default) the limits on every node that answers; `reason` goes in the audit.

    Every addressed GPU of the reachable nodes must exist, and unless clamping every range must take the value,
    before anything changes; a node that cannot be read is reported in the errors and left alone. The audit log is
    opened, and a probe entry written and rolled back, before any node is contacted, and each node's request written
    before any is asked: a store that cannot record the change (read-only, held by another writer, full) refuses the
    request with nothing changed. Each answer replaces its request as it comes (`RequestTrail`). An interrupt once
    the change step began, up to the store's close, raises `LimitsInterrupted` with what did change, recorded; one
    before it is raised as it came (nothing changed). At most `fanout` nodes at once; `told` hears how it goes.
    """
    from factoryctl.store import open_store

    check_watts(watts)
    check_agent_cache(nodes)
    store = open_store(config.store_path)
    held = HeldSessions(config, timeout)
    try:
        ask, progress = (gpus, watts, clamp), told or LimitProgress()
        changes, errors, interrupt = _requested(store, held, nodes, ask, reason, fanout, progress)
    except BaseException:
        _closed(held, store)  # a refused request's sessions; an interrupt meanwhile changes nothing of its outcome
        raise
    closing = _closed(held, store)  # an interrupt now came after the nodes answered: what they did stands
    stopped = interrupt or closing
    if stopped is not None:
        raise LimitsInterrupted(changes, errors, stopped)
    return changes, errors


def _requested(
    store: Store,
    held: HeldSessions,
    nodes: Sequence[NodeSpec],
    ask: tuple[list[int] | None, float | None, bool],
    reason: str | None,
    fanout: int,
    told: LimitProgress,
) -> tuple[list[LimitChange], list[NodeError], BaseException | None]:
    """`apply_limit`'s checks, its requests in the audit log, the change and its answers; the interrupt that came.

    An interrupt before the requests are in the log is raised: no node was asked. Answers the store refused raise
    `LimitsNotRecorded`, with the changes and errors.
    """
    targets, errors = _checked_targets(store, held, nodes, ask, fanout, told)
    trail = RequestTrail(store, "reset" if ask[1] is None else "set", ask[1], reason, told.note)
    try:
        interrupt = _written_whole(lambda: trail.announce([node.name for node in targets], ask[0]))
    except StoreError as error:
        raise nothing_changed(error) from None
    outcomes: list[tuple[NodeSpec, _NodeChanges | NodeError | Pending]] = []
    if interrupt is None:  # else no node is asked, and `finish` drops every request
        outcomes, interrupt = _change_all(held, targets, ask, fanout, trail, told)
    changes = _gathered(outcomes, errors)
    try:
        finished = _written_whole(trail.finish)  # the limits changed: what is left of their entries is written whole
    except StoreError as error:  # what the nodes did is said all the same, then the audit failure
        raise LimitsNotRecorded(error, changes, errors, interrupt) from error
    return changes, errors, interrupt or finished


def _closed(held: HeldSessions, store: Store) -> BaseException | None:
    """Close the sessions still held (a refused or interrupted request's), then the store; an interrupt meanwhile.

    It is returned, not raised: coming after every node answered, it must not pass for one that came before any was
    asked (64 GPUs changed and audited were said as `no power limit was changed`). The sessions' close stays
    interruptible (each asks its agent to exit, a hung one included); the store's, quick, is done whole.
    """
    interrupted: BaseException | None = None
    try:
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
    try:
        store.check_audit_writable()
    except StoreError as error:
        raise nothing_changed(error) from None
    close_abandoned(store, told.note)  # what a killed command left `unknown`: said before this one asks any node
    targets, errors = list(nodes), list[NodeError]()
    range_checked = watts is not None and not clamp
    if range_checked or gpus is not None:
        targets, errors = _validate(targets, gpus, watts if range_checked else None, fanout, held, told)
    return targets, errors


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
    answers: dict[str, _NodeChanges],
) -> _NodeChanges:
    """Ask one node's agent to set (or reset) the limits; its answers, GPU by GPU, and its error if it failed part-way.

    The agent is the session that read the node's GPUs when it is still held, else a new one. The answer replaces
    the node's request in the audit log, and is in `answers`, before the session is closed (which takes a while).
    """
    asked: str | None = None  # set once the request goes out: from then on the limit may change
    try:
        with held.session_for(node) as session:
            asked = "reset" if change[1] is None else "change"
            answers[node.name] = _ask(session, node.name, change, held.timeout, trail)
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


def limit_changes(node: str, answers: Sequence[dict[str, Any]]) -> list[LimitChange]:
    """The agent's answers (`{index, before_w, enforced_w, clamped}`, docs/agent-protocol.md) as changes.

    An answer that names no GPU (not an object, no `index` from 0 to MAX_GPU_INDEX) raises `malformed_answer`'s
    `Unconfirmed`: the node was asked, so its limits may have changed. Its KeyError said `no power limit was changed`.
    """
    changes = []
    for a in answers:
        index = a.get("index") if isinstance(a, dict) else None
        if type(index) is not int or not 0 <= index <= MAX_GPU_INDEX:
            raise malformed_answer(node, ValueError(f"an answer names no GPU: {a!r:.80}"))
        changes.append(
            LimitChange(node, index, _watts(a.get("before_w")), _watts(a.get("enforced_w")), bool(a.get("clamped")))
        )
    return changes


def malformed_answer(node: str, problem: Exception) -> Unconfirmed:
    """The error of a node whose answer to a change of its limits is not one: they may have changed, or not."""
    return Unconfirmed(
        node,
        "agent",
        f"the agent sent a malformed answer to the change ({problem}): its limits may have changed",
        f"check with `factoryctl gpus {node}`; `factoryctl nodes check {node}` checks its agent.",
    )


def _watts(value: object) -> float | None:
    """Watts from the wire, as a float; None when the node did not say (or said something that is no number)."""
    number = number_or_none(value)
    return None if number is None else float(number)


def partly_changed(failed: PartlyDone) -> tuple[list[LimitChange], NodeError]:
    """What a limit request that failed part-way changed first, and its error, which then names those GPUs."""
    changes = limit_changes(failed.node, failed.result.get("gpus") or [])
    if not changes:
        return [], failed
    done = [str(c.gpu) for c in changes]
    which = f"GPUs {', '.join(done[:-1])} and {done[-1]}" if len(done) > 1 else f"GPU {done[0]}"
    return changes, NodeError(
        failed.node, failed.kind, f"{failed.message.rstrip('.')}; {which} had already changed.", failed.hint
    )
