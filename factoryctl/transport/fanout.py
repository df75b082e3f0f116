"""A bounded fan-out that Ctrl-C can leave at once, and can tell afterwards how far each node got.

`concurrent.futures` joins its worker threads on interpreter exit, so an interrupted `factoryctl exec` would sit
until every node's command timed out. Here each node runs on a daemon thread, at most `fanout` at a time, and the
caller waits in short slices, so KeyboardInterrupt reaches it immediately and the process can exit (the caller
interrupts what still runs: `RunningCommands`). Results come back in input order; a failure is the node's NodeError.
A ConfigError or UsageError met on one node (a bad ProxyJump in ~/.ssh/config) is that node's result too, of kind
`config` or `usage` with its own exit code (3, 2), which outranks the nodes' failures (`errors.most_severe`): the
other nodes' results are kept (exec's output, power changes that must reach the audit log).
A `cancel` event ends the wait the same way without a signal (SIGINT may be ignored: `cmd &` in a script), by
raising Cancelled: `exec --lines` sets it when its stdout's reader goes away.
After an interrupt, `FanOut.settle` waits a little for the nodes still running and says where each one is, so exec
can still report what finished, what it stopped and what it never started, as a per-node timeout does.
An unexpected failure (a bug, or a library raising what it does not document) is one sentence like the others, and its
traceback is kept in `NODE_TRACEBACKS` while `--debug` asks for it: the CLI prints it after the nodes' errors.
No more nodes are worked on at once than the open-file limit has descriptors for (`within_file_limit`): past it,
the nodes that found none were reported down, though nothing was wrong with them.
When this machine cannot start another thread, the nodes not started yet fail with the `local` error that says so,
and the ones already running are waited for: a `RuntimeError` out of the fan-out lost the output of the commands that
had run and the power changes already made.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from factoryctl.errors import ConfigError, FactoryError, NodeError, UsageError
from factoryctl.transport.host_limits import (
    FILES_PER_NODE,
    fanout_within_file_limit,
    is_thread_exhaustion,
    local_limit_error,
    open_file_limit,
    raise_open_file_limit,
    thread_limit_error,
)
from factoryctl.transport.stops_underway import STOPS_UNDERWAY

if TYPE_CHECKING:  # the CLI imports this module for its `--fanout` bounds when it builds `--help`: keep it light
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.signal_wake import Wake
    from factoryctl.transport.base import KeptOutput, NodeTransport

T = TypeVar("T")

#: How many nodes every fan-out works on at once unless told otherwise (`--fanout` of every command): a thread each.
#: 300 unreachable nodes with `--timeout 2` took 11.2 s at 64 at once and 3.4 s at 300 (measured).
DEFAULT_FANOUT = 64
#: The most `--fanout` accepts: a thread per node in flight, and 10,000 threads is already past what helps.
MAX_FANOUT = 10_000
#: Past this many nodes in flight the open-file soft limit (often 1,024) is raised to the hard one first: a local
#: node takes 6 descriptors while its agent starts (3 pipes), an SSH node a socket and a pipe per channel waited on.
LARGE_FANOUT = 32

#: Descriptors counted for a node of a transport FILES_PER_NODE does not know: the costliest known.
_MOST_FILES_PER_NODE = max(FILES_PER_NODE.values())

#: The message of a node whose command was never run because its caller was interrupted.
NOT_STARTED_MESSAGE = "not started: exec was interrupted"
#: How often a wait looks again at `cancel` (and at a settle's end).
_SLICE_S = 0.2


class Cancelled(Exception):
    """The `cancel` event was set while fan_out waited; the work still running is left to the caller to stop."""


class Pending(enum.Enum):
    """Where a node without a result is: its work never began (the fan-out was left first), or it still runs."""

    NOT_STARTED = "not started"
    RUNNING = "running"


def as_node_error(node: str, exc: BaseException) -> NodeError:
    """Classify a failure on one node; unexpected ones become `agent` errors instead of crashing the fan-out.

    A config or usage error keeps its kind (`config`, `usage`) and exit code, its message without the node's name in
    front (an agent's refused request starts with it): the error's `node` names it, as for every NodeError. A bare
    `EOFError` (paramiko's, without a word, when a connection goes away under a step that did not classify it) is a
    lost connection, worded by the node's connection as its own steps word it (`ssh_lost.lost_under`: a link that
    stopped answering, its jump host's link that did); so is paramiko's `SSHException` once that
    connection has ended (`Channel closed.`: the reason it ended went to another waiter).
    """
    if isinstance(exc, NodeError):
        return exc
    local = local_limit_error(node, exc)
    if local is not None:
        return local
    if isinstance(exc, (ConfigError, UsageError)):
        kind = "config" if isinstance(exc, ConfigError) else "usage"
        error = NodeError(node, kind, exc.message.removeprefix(f"{node}: "), exc.hint)  # its `node` names it
        error.exit_code = exc.exit_code  # NodeError's kinds map node failures only
        return error
    if isinstance(exc, FactoryError):
        return NodeError(node, "agent", exc.message, exc.hint)
    NODE_TRACEBACKS.add(node, exc)
    if type(exc).__module__.startswith("paramiko") or isinstance(exc, EOFError):  # a connection ended under a step
        from factoryctl.transport.ssh_lost import lost_under  # here: the CLI's `--help` imports this module

        lost = lost_under(node, exc)
        if lost is not None:
            return lost
    hint = "its traceback follows the output." if NODE_TRACEBACKS.keeps else "rerun with --debug for details."
    return NodeError(node, "agent", f"{type(exc).__name__}: {exc}", hint)


class NodeTracebacks:
    """The tracebacks of nodes' unexpected failures, kept only while `--debug` asks for them (`keeping`).

    Kept as text, formatted when the failure is classified: a traceback object would keep its frames alive, and the
    transports in them. Each distinct traceback is kept once with the nodes it happened on (each node once), and at
    most `MAX_KEPT` of them, so a controller run with `--debug` for days does not grow.
    """

    MAX_KEPT = 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, None]] | None = None  # traceback -> its nodes (a dict: ordered, each once)

    @contextlib.contextmanager
    def keeping(self) -> Iterator[None]:
        """Keep the tracebacks of the failures classified until the block ends (`taken` gives them)."""
        with self._lock:
            self._kept = {}
        try:
            yield
        finally:
            with self._lock:
                self._kept = None

    @property
    def keeps(self) -> bool:
        """Whether tracebacks are kept now (`--debug`): a node's unexpected error then hints at it, not at --debug."""
        return self._kept is not None

    def add(self, node: str, exc: BaseException) -> None:
        """Keep `exc`'s traceback for `node`, if tracebacks are being kept."""
        if self._kept is None:
            return
        text = "".join(traceback.format_exception(exc))
        with self._lock:
            if self._kept is not None and (text in self._kept or len(self._kept) < self.MAX_KEPT):
                self._kept.setdefault(text, {})[node] = None

    def taken(self) -> list[tuple[list[str], str]]:
        """The tracebacks kept so far, each with its nodes in the order they failed; they are not kept any more."""
        with self._lock:
            kept = self._kept or {}
            if self._kept is not None:
                self._kept = {}
        return [(list(nodes), text) for text, nodes in kept.items()]


#: The process's kept tracebacks: `factoryctl --debug` keeps them while its command runs (cli/app.py).
NODE_TRACEBACKS = NodeTracebacks()


class FanOut(Generic[T]):
    """`work` on every node, at most `fanout` at once: `run` waits for all; after an interrupt, `settle` for the rest."""

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        work: Callable[[NodeSpec], T],
        fanout: int = DEFAULT_FANOUT,
        cancel: threading.Event | None = None,
    ) -> None:
        self.nodes = list(nodes)
        if min(len(self.nodes), fanout) > LARGE_FANOUT:
            raise_open_file_limit()  # a socket (and pipes) per node in flight
        #: Nodes worked on at once: `fanout`, or fewer when the open-file limit has no room for that many.
        self.fanout = within_file_limit(self.nodes, fanout)
        self._work = work
        self._cancel = cancel
        self._slots = threading.BoundedSemaphore(self.fanout)
        self._finished = threading.Semaphore(0)
        self._changed = threading.Condition()
        self._states: list[T | NodeError | Pending] = [Pending.NOT_STARTED] * len(self.nodes)
        self._done = 0  # nodes finished (read without the lock: a progress figure)

    def run(self, progress: Callable[[int, int], None] | None = None) -> list[tuple[NodeSpec, T | NodeError]]:
        """Every node's result, in input order; interruptible while waiting (Ctrl-C, or `cancel`: Cancelled).

        `progress(done, total)` is told, on this thread, each time a node is done.
        """
        total = len(self.nodes)
        tick = None if progress is None else lambda: progress(self._done, total)
        for _ in range(self._start_all(tick)):
            self._wait(self._finished, tick)
        if tick is not None:
            tick()
        return [(node, cast("T | NodeError", state)) for node, state in zip(self.nodes, self._states, strict=True)]

    def settle(
        self, within: float, stop: Wake | None = None, awaited: Callable[[str], bool] | None = None
    ) -> list[tuple[NodeSpec, T | NodeError | Pending]]:
        """After `run` was left: wait at most `within` seconds (or until `stop` is given) for the nodes still running.

        `stop` is looked at every slice (0.2 s), never waited on: a signal handler gives it (exec's second Ctrl-C),
        and nothing a handler gives may take a lock (signal_wake.py). Once it is given, the nodes `awaited` names
        (an interrupt still on its way to them, their result coming) are still waited for, within `within`.
        Returns each node's result, or where it still is (`Pending`); no node is started any more.
        """
        deadline = time.monotonic() + within
        with self._changed:
            while running := [
                n.name for n, state in zip(self.nodes, self._states, strict=True) if state is Pending.RUNNING
            ]:
                left = deadline - time.monotonic()
                stopped = stop is not None and stop.is_set()
                if left <= 0 or (stopped and (awaited is None or not any(map(awaited, running)))):
                    break
                self._changed.wait(min(left, _SLICE_S))
            return list(zip(self.nodes, self._states, strict=True))

    def _start_all(self, tick: Callable[[], None] | None) -> int:
        """Start a thread per node as slots free up; returns how many started (all, unless this machine ran out).

        Out of threads (`is_thread_exhaustion`), the nodes not started yet fail with the `local` error that names
        this machine's task limit, and those already running are waited for by the caller: their results (exec's
        output, power changes already made) are reported, not lost to one unexpected error.
        """
        for i, node in enumerate(self.nodes):
            self._wait(self._slots, tick)
            try:
                threading.Thread(target=self._one, args=(i, node), daemon=True, name=f"fanout-{node.name}").start()
            except RuntimeError as exc:
                self._slots.release()
                if not is_thread_exhaustion(exc):
                    raise
                for j in range(i, len(self.nodes)):
                    self._set(j, thread_limit_error(self.nodes[j].name))
                with self._changed:
                    self._done += len(self.nodes) - i
                return i
        return len(self.nodes)

    def _one(self, i: int, node: NodeSpec) -> None:
        self._set(i, Pending.RUNNING)
        try:
            self._set(i, self._work(node))
        except Exception as exc:
            self._set(i, as_node_error(node.name, exc))
        finally:
            with self._changed:
                self._done += 1
            self._slots.release()
            self._finished.release()

    def _set(self, i: int, state: T | NodeError | Pending) -> None:
        with self._changed:
            self._states[i] = state
            self._changed.notify_all()

    def _wait(self, semaphore: threading.Semaphore, tick: Callable[[], None] | None = None) -> None:
        while not semaphore.acquire(timeout=_SLICE_S):
            if self._cancel is not None and self._cancel.is_set():
                raise Cancelled
            if tick is not None:
                tick()


def within_file_limit(nodes: Sequence[NodeSpec], fanout: int) -> int:
    """`fanout`, or as many nodes at once as the open-file limit leaves descriptors for (see host_limits.py).

    Past the limit, the nodes that found no descriptor were reported down (with the right words, but down): fewer at
    once is slower, and correct. A `--fanout` the user gave is lowered with a note (`FANOUT_NOTES`).
    """
    wanted = max(1, min(len(nodes), fanout))
    per_node = max((FILES_PER_NODE.get(node.transport, _MOST_FILES_PER_NODE) for node in nodes), default=1)
    bounded = fanout_within_file_limit(wanted, per_node)
    if bounded < wanted:
        FANOUT_NOTES.lowered(fanout, bounded)
    return bounded


class FanoutNotes:
    """Where to say that a `--fanout` the user gave was lowered to fit the open-file limit: set by the option itself.

    The CLI's `--fanout` says (`asked`) whether the user gave it and whether `--quiet` is on; the default fan-out is
    lowered silently. Each lowering is said once per process: `nodes --watch` would repeat it every redraw.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: int | None = None
        self._say: Callable[[str], None] | None = None
        self._said: set[tuple[int, int]] = set()

    def asked(self, fanout: int | None, say: Callable[[str], None] | None) -> None:
        """The user gave `--fanout fanout` (None: it is the default, or the command has no such option); `say` tells."""
        with self._lock:
            self._asked, self._say = fanout, say

    def lowered(self, fanout: int, bounded: int) -> None:
        """Say that `fanout` nodes at once became `bounded`, if the user asked for `fanout` and was not said it yet."""
        with self._lock:
            if self._say is None or fanout != self._asked or (fanout, bounded) in self._said:
                return
            self._said.add((fanout, bounded))
            say = self._say
        limit = open_file_limit()
        shown = f" (ulimit -n is {limit})" if limit is not None and limit >= 0 else ""
        say(
            f"note: --fanout {fanout} lowered to {bounded}: the open-file limit{shown} leaves descriptors for"
            f" {bounded} nodes at once; raise it (`ulimit -n`, LimitNOFILE=) to work on more"
        )


#: The process's notes about a lowered `--fanout` (cli/options.py's FANOUT_OPTION sets who hears them).
FANOUT_NOTES = FanoutNotes()


def fan_out(
    nodes: Sequence[NodeSpec],
    work: Callable[[NodeSpec], T],
    fanout: int = DEFAULT_FANOUT,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[NodeSpec, T | NodeError]]:
    """Run `work` on every node, at most `fanout` at once; interruptible while waiting (Ctrl-C, or `cancel`).

    `progress(done, total)`, if given, is told how many nodes are done while it waits (see `FanOut.run`).
    """
    return FanOut(nodes, work, fanout, cancel).run(progress)


class RunningCommands:
    """The nodes whose command runs, so an interrupt reaches each, and what each has printed so far.

    Once interrupting, a node still connecting runs no command (it would outlive its caller), nor does one connected
    whose command had not started yet: its transport, interrupted, refuses it (`not started`) or, where the start
    was already on its way, interrupts it as it starts (transport/ssh_interrupt.py). What a command prints
    is read from the streams its transport keeps (`KeptOutput`: no second copy) while it runs: a command that
    ignores the interrupt and never returns still has its output reported.
    """

    def __init__(self) -> None:
        self._live: dict[NodeTransport, str] = {}
        self._output: dict[str, KeptOutput] = {}
        self._signalled: set[NodeTransport] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._left: set[str] = set()  # the nodes whose run is over (`leave`)
        #: The nodes whose command was running when `interrupt_all` was called.
        self.interrupted: set[str] = set()

    def admit(self, node: str, transport: NodeTransport, kept: KeptOutput | None = None) -> NodeTransport:
        """`transport`, now counted as running; closed and refused if the commands are already being interrupted.

        `kept` collects what its command prints (`output` reads it while the command runs).
        """
        with self._lock:
            if not self._stopping:
                STOPS_UNDERWAY.forget(node)  # an earlier run's, in this process
                self._live[transport] = node
                if kept is not None:
                    self._output[node] = kept
                return transport
        transport.close()
        raise NodeError(node, "interrupted", NOT_STARTED_MESSAGE)

    def output(self, node: str) -> tuple[bytes, bytes]:
        """What the node's command printed so far on stdout and stderr (empty once it ended: see `leave`)."""
        kept = self._output.get(node)
        return (b"", b"") if kept is None else kept.so_far()

    def leave(self, node: str, transport: NodeTransport) -> None:
        """The command ended (its result has its output): forget and close its transport."""
        with self._lock:
            self._live.pop(transport, None)
            self._output.pop(node, None)
            self._left.add(node)  # before its interrupt's hold goes: `stopping` sees one of the two
        STOPS_UNDERWAY.forget(node)
        transport.close()

    def stopping(self, node: str) -> bool:
        """Whether `node` is still being stopped: its interrupt on its way (stops_underway.py), or its result coming."""
        if STOPS_UNDERWAY.held(node):
            return True
        with self._lock:
            return node in self._left

    def interrupt_all(self) -> None:
        """Stop admitting nodes and interrupt every admitted transport (SIGINT, then SIGHUP to its command), each once.

        A transport is interrupted even when its command has not started yet: it then never starts it (see above).
        """
        with self._lock:
            self._stopping = True
            running = [t for t in self._live if t not in self._signalled]
            self.interrupted.update(self._live[t] for t in running)
        for transport in running:
            with contextlib.suppress(Exception):
                transport.interrupt()
            with self._lock:  # only once signalled: a second Ctrl-C cutting this loop short leaves the rest to retry
                self._signalled.add(transport)
