"""The audit entries of an explicit power-limit request, written so that no change escapes them, even on SIGKILL.

A change is audited from the node's answer (its limit before and after), but the answer comes after the change:
a factoryctl killed in between (SIGKILL, the OOM killer, `timeout -k`, systemd's stop escalation; none can be
caught) changed limits that no entry recorded. So each node's request is written first, before any node is asked, as
an entry of outcome `unknown` (the requested value, who and why; one per addressed GPU, or one for every GPU of the
node when the request names none), and each node's answer replaces its request the moment it comes, one
transaction per node. Whatever stops factoryctl, a change is either answered in the log or still there as a request.
A GPU whose limit did not change (already at the value, or a reset of a GPU at its default) is not a change, and
gets no entry: a reset from cron every few minutes would otherwise fill the log with entries of nothing.

A request names its process (`who.Run`): a factoryctl killed before its answers left its requests `unknown`, and the
next request closes those of a process that ended (`close_abandoned`, outcome `abandoned`), saying so; nothing else
would ever answer them. A command whose store refused the answers (a disk filled while nodes changed) leaves its
requests the same way, though it heard back: the note says the command ended without recording an answer, true of both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from factoryctl.store.who import login_name, run_ended, this_run

if TYPE_CHECKING:
    from factoryctl.power.limits import LimitChange
    from factoryctl.store.audit_runs import Abandoned
    from factoryctl.store.rows import AuditEntry
    from factoryctl.store.sqlite import Store

_log = logging.getLogger(__name__)


def changed(change: LimitChange) -> bool:
    """Whether the GPU's limit moved (or the node did not say what it was, before or after: then it may have)."""
    return change.before_w is None or change.enforced_w is None or change.before_w != change.enforced_w


def audit_entries(
    changes: Sequence[LimitChange], action: str, at: float, reason: str | None, requested_w: float | None = None
) -> list[AuditEntry]:
    """The entries of `changes` answered at `at`, the GPUs whose limit did not move left out."""
    from factoryctl.store.rows import AuditEntry

    user = login_name()
    return [
        AuditEntry(at, c.node, c.gpu, action, c.before_w, c.enforced_w, c.clamped, user, reason, None, requested_w)
        for c in changes
        if changed(c)
    ]


def record_audit(store: Store, changes: Sequence[LimitChange], action: str, reason: str | None = None) -> None:
    """Write every change to the store's audit log at once, with before and after (a GPU that did not move: none).

    For a caller that records right after its node's reply (the dashboard's cap). The limits are already changed
    when this runs: a failure says so, so nobody takes it for a refusal.
    """
    from factoryctl.store.sqlite import StoreError

    entries = audit_entries(changes, action, time.time(), reason)
    if not entries:
        return
    try:
        store.add_audit(entries)
    except StoreError as error:
        raise changed_but_not_recorded(len(entries), error) from error


def close_abandoned(store: Store, note: Callable[[str], None] | None) -> None:
    """Close the requests left `unknown` by a command that ended without recording an answer, and say so to `note`.

    Before any node is asked, so a `power set` rerun after a SIGKILL says what the killed one left. A store that
    refuses the write now changes nothing of this request: the requests stay `unknown`, and a warning says why.
    """
    from factoryctl.store.audit_runs import close_ended
    from factoryctl.store.sqlite import StoreError

    try:
        closed = close_ended(store, run_ended)
    except StoreError as error:
        warn(note, f"the requests of ended commands stay `unknown` in the audit log: {error.message}")
        return
    for abandoned in closed:
        if note is not None:
            note(abandoned_note(abandoned))


def warn(note: Callable[[str], None] | None, sentence: str) -> None:
    """Say a warning to `note` (the CLI's, which writes `factoryctl: warning: ...`), else to the log (the dashboard)."""
    if note is not None:
        note(f"warning: {sentence}")
    else:
        _log.warning("%s", sentence)


def abandoned_note(abandoned: Abandoned) -> str:
    """`3 audit entries of n[1-2] were left `unknown` by a command that ended without recording an answer (pid ...`.

    Not `before it heard back`: a command whose store refused the answers (a full disk) heard back, and ended with
    its requests `unknown` all the same.
    """
    import shlex

    from factoryctl.model.folding import fold_nodes

    many = abandoned.entries != 1
    entries = f"{abandoned.entries:,} audit entr{'ies' if many else 'y'}"
    whose = "an older factoryctl" if abandoned.pid is None else f"pid {abandoned.pid}"
    nodes = fold_nodes(abandoned.nodes)
    return (
        f"{entries} of {nodes} {'were' if many else 'was'} left `unknown` by a command that ended without "
        f"recording an answer ({whose}): now `abandoned`; the limits there may or may not have changed (`factoryctl gpus "
        f"{shlex.quote(nodes)}` says what they are)."
    )


def changed_but_not_recorded(gpus: int, error: Exception, left: str = "") -> Exception:
    """The StoreError of changes the audit log could not take; `left`: what the log holds of them instead.

    The store's own sentence ends with a full stop, and its hint says what to do about the store (free disk space):
    both kept, one sentence (`was not saved.; each...` read as two), the hint after the one to read the limits.
    """
    from factoryctl.store.sqlite import StoreError

    said = f"{gpus} GPU{'' if gpus == 1 else 's'}"
    message = str(getattr(error, "message", error)).rstrip().rstrip(".")
    store_hint = getattr(error, "hint", None) or "check the store (`controller status`)."
    return StoreError(
        f"the power limits of {said} were changed, but the audit log could not record it: {message}{left}.",
        hint=f"see `factoryctl gpus` for the limits now in force; then {store_hint}",
    )


class RequestTrail:
    """One request's audit entries: each node's request before it is asked (`announce`), replaced by its answer.

    `answered` is called from the fan-out's threads as each node answers; one thread at a time writes, taking along
    the answers that came meanwhile, so a store held by another writer costs one busy timeout, not one per node. Once a
    write fails, the answers are kept and `finish` writes them together. A node asked that never answered keeps its request:
    outcome unknown. `note` hears the warnings (the CLI's notes; None: the log).
    """

    def __init__(
        self,
        store: Store,
        action: str,
        requested_w: float | None,
        reason: str | None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self._store, self._action, self._requested_w, self._reason = store, action, requested_w, reason
        self._note = note
        self._lock = threading.Lock()
        self._request_ids: dict[str, list[int]] = {}  # by node: its requests still in the log, unanswered
        self._asked: set[str] = set()
        self._unwritten: list[tuple[list[int], list[AuditEntry]]] = []  # answers the store refused, for `finish`
        self._store_failed = False
        self._finished = False
        self._stopped = False  # `stop_asking`: an interrupt came, the nodes not asked yet never will be
        self._writing = False  # a thread is writing answers: the others leave theirs to it (`answered`)

    def announce(self, nodes: Sequence[str], gpus: Sequence[int] | None) -> None:
        """Write the request of each node (each of `gpus`, else one for every GPU) in one transaction; StoreError."""
        from factoryctl.store.rows import UNKNOWN, AuditEntry

        now, user = time.time(), login_name()
        addressed: Sequence[int | None] = [None] if gpus is None else gpus
        requests = [
            AuditEntry(
                now, node, gpu, self._action, None, None, False, user, self._reason, None, self._requested_w, UNKNOWN
            )
            for node in nodes
            for gpu in addressed
        ]
        ids = self._store.add_audit_requests(requests, this_run())
        for request, request_id in zip(requests, ids, strict=True):
            self._request_ids.setdefault(request.node, []).append(request_id)

    def asking(self, node: str) -> None:
        """`node` is being asked now: from here on its limits may change, and only its answer tells.

        Once an interrupt came (`stop_asking`) or `finish` ran, a node whose session came up late is not asked
        (NodeError): nothing waits for its answer, and its request is dropped, so a change now would be in no log.
        """
        from factoryctl.errors import NodeError

        with self._lock:
            if self._finished or self._stopped:
                raise NodeError(node, "interrupted", "not asked: the command was stopped before it connected.")
            self._asked.add(node)

    def stop_asking(self) -> None:
        """An interrupt came: no node is asked from now on (`asking` refuses), so none not yet asked is waited for."""
        with self._lock:
            self._stopped = True

    def was_asked(self, node: str) -> bool:
        """Whether `node` was asked (`asking`): its limits may change, and its answer is worth waiting for."""
        with self._lock:
            return node in self._asked

    def answered(self, node: str, changes: Sequence[LimitChange]) -> None:
        """`node` answered with `changes` (none: it refused, changing nothing): they replace its requests, now."""
        from factoryctl.store.sqlite import StoreError

        entries = audit_entries(changes, self._action, time.time(), self._reason, self._requested_w)
        with self._lock:
            if self._finished:
                return
            self._unwritten.append((self._request_ids.pop(node, []), entries))
            if self._store_failed or self._writing:  # the thread writing takes it along: one busy wait at a time
                return
            self._writing = True
        try:
            while True:
                with self._lock:
                    batch, self._unwritten = self._unwritten, []
                    if not batch or self._finished:
                        self._unwritten = batch + self._unwritten
                        return
                try:
                    ids = [i for request_ids, _ in batch for i in request_ids]
                    self._store.replace_audit(ids, [entry for _, answered in batch for entry in answered])
                except StoreError:
                    with self._lock:
                        self._store_failed = True
                        self._unwritten = batch + self._unwritten
                    return
        finally:
            with self._lock:
                self._writing = False

    def finish(self) -> None:
        """Write the answers the store refused meanwhile, and drop the requests of the nodes never asked.

        The requests of nodes asked that never answered stay (outcome unknown). Raises StoreError when changes could
        not be recorded: their nodes' requests are still in the log (one per GPU asked, or one per node for all its
        GPUs), which the message says; the caller has the changes, to say them (`limits.LimitsNotRecorded`).
        """
        from factoryctl.store.sqlite import StoreError

        with self._lock:
            self._finished = True
            never_asked = [i for node, ids in self._request_ids.items() if node not in self._asked for i in ids]
            unwritten, self._unwritten = self._unwritten, []
        ids = never_asked + [i for request_ids, _ in unwritten for i in request_ids]
        entries = [entry for _, node_entries in unwritten for entry in node_entries]
        if not ids and not entries:
            return
        try:
            self._store.replace_audit(ids, sorted(entries, key=lambda entry: entry.time))
        except StoreError as error:
            if entries:
                left = "; their nodes' requests stay in the audit log instead, outcome `unknown`"
                raise changed_but_not_recorded(len(entries), error, left) from error
            # nothing changed on them: the command's outcome stands, but the log over-reports, so say so
            warn(self._note, self._left_unknown(never_asked, len(ids) - len(never_asked), error.message))

    @staticmethod
    def _left_unknown(never_asked: Sequence[int], unchanged: int, why: str) -> str:
        """The warning of requests no limit changed under that the store would not drop: whose they are, and why.

        After every node was asked and refused, it said `the requests of nodes never asked`: they had been asked.
        """
        count = len(never_asked) + unchanged
        whose = " or ".join(
            said
            for said, n in (("of nodes never asked", len(never_asked)), ("of nodes that changed nothing", unchanged))
            if n
        )
        many = count != 1
        return (
            f"{count:,} request{'s' if many else ''} {whose} {'stay' if many else 'stays'} in the audit log as "
            f"`unknown` (no limit changed there): {why}"
        )
