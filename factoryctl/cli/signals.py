"""SIGTERM and SIGHUP as interrupts, and how a stopped command says so (`factoryctl: interrupted`, `terminated`, a hint).

cron's `timeout` and systemd stop a command with SIGTERM, and a closed terminal sends SIGHUP; by default both kill
the process silently, so commands could neither clean up nor say they were stopped. While the CLI runs (`app.run`),
SIGTERM raises `Terminated` and SIGHUP `HungUp` instead: the commands that must report what they did (`exec`,
`power set`) handle them as Ctrl-C, the others end at the error boundary, which says `terminated` (exit 143) or
`hung up` (129). A signal ignored where factoryctl started (`nohup`) stays ignored. The handlers are installed only
for that time, never at import, and the previous ones are put back; only the first stop raises, the others shorten
the clean-up, and none breaks into the putting back (a storm of Ctrl-C and SIGTERM did). The daemons (`controller run`, `metrics serve`)
reload on SIGHUP, from the CLI's start: one that comes before their handler is in place is held for it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import typer

from factoryctl.cli.daemon_hangup import hold_hangup
from factoryctl.cli.process_exit import outcome_kept
from factoryctl.errors import ExitCode
from factoryctl.signal_wake import Wake

#: What a stop says, by exit status: `factoryctl: interrupted` (Ctrl-C, 130), `terminated` (SIGTERM, 143) or `hung
#: up` (SIGHUP, 129).
STOPPED_WORDS: dict[int, str] = {
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated",
    ExitCode.HUNG_UP: "hung up",
}
#: The hint under each stop's sentence: like every error, a stop says what to do next.
STOPPED_HINTS: dict[int, str] = {
    ExitCode.INTERRUPTED: "Ctrl-C stopped it (exit 130); run the command again for a complete result.",
    ExitCode.TERMINATED: (
        "SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command again, with more time if a "
        "time limit ended it."
    ),
    ExitCode.HUNG_UP: (
        "SIGHUP stopped it (exit 129: its terminal closed, or kill -HUP); run the command again, under nohup or in "
        "tmux to outlive the terminal."
    ),
}


def report_stopped(status: int, sentence: str | None = None) -> None:
    """`factoryctl: interrupted` (`terminated`, `hung up`, or `sentence`) and its hint on stderr, for exit `status`."""
    sys.stderr.write(f"factoryctl: {sentence or STOPPED_WORDS[status]}\nhint: {STOPPED_HINTS[status]}\n")


class Terminated(BaseException):
    """SIGTERM arrived while the command worked: it stops as for Ctrl-C, then exits 143.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way takes it for a node's failure.
    """


class HungUp(Terminated):
    """SIGHUP arrived while the command worked (its terminal closed, `kill -HUP`): it stops as for SIGTERM, exits 129."""


def stopped_status(stopped: BaseException) -> int:
    """The exit status of a command `stopped` by this: 129 (SIGHUP), 143 (SIGTERM), else 130 (Ctrl-C)."""
    if isinstance(stopped, HungUp):
        return int(ExitCode.HUNG_UP)
    return int(ExitCode.TERMINATED if isinstance(stopped, Terminated) else ExitCode.INTERRUPTED)


class Interrupted(BaseException):
    """Ctrl-C ended a command that left its KeyboardInterrupt to the error boundary, which says so (exit 130).

    Typer turns a KeyboardInterrupt out of a command into a silent exit 130 that the boundary cannot tell from a
    command's own 130 (`--watch` ending), so the root group raises this instead (`app.run`).
    """


class LoadInterrupted(Interrupted):
    """Ctrl-C while the command line was still being parsed: said even for a command that runs until stopped."""


def sigterm_interrupts(
    hangup_reloads: bool = False, replaced: dict[int, Any] | None = None, later_stops_wake: bool = False
) -> StopBlock:
    """While the block runs, SIGTERM raises Terminated in it, SIGHUP HungUp (the old handlers are put back at its end).

    Only the first stop raises, Ctrl-C included (KeyboardInterrupt, as Python's own handler has it), and a stop that
    reached a block nested in this one reached this one too. A SIGTERM or SIGHUP after it does not cut the clean-up
    short: it gives the `Wake` yielded (stop waiting for the commands), which takes no lock: a third signal can land
    inside the second's handler, and a `threading.Event` there hung the command for ever (signal_wake.py). A later
    Ctrl-C ends at once what the command still does (a result stuck on a reader that stopped reading, `power set`'s
    wait: "Ctrl-C again stops the wait"), raising the first stop's exception again, so that its status and sentence
    stand. In the error boundary's block no stop raises while a stop's exception is on its way out (the clean-up it
    runs), even one another handler raised (`--schedule-out`'s, on the first of 300 Ctrl-Cs). A signal ignored where factoryctl started (`nohup`, a service's SIGTERM ignored) stays ignored.
    Outside the main thread (no handler can be installed) the block runs as is.

    With `later_stops_wake` (`exec`, which waits for its interrupted commands and reports each node) a later Ctrl-C
    only gives the `Wake` too, like SIGTERM: raised, it left exec anywhere between the first stop's exception and
    exec's wait for the commands (a double Ctrl-C 10 ms apart), which then said `interrupted` and nothing of the
    nodes. Once the block has ended, a later Ctrl-C is the enclosing block's (the boundary's: it ends at once).

    Nothing is raised while a block puts its handlers in or hands them over (`StopBlock`): a storm of Ctrl-C and
    SIGTERM cut that hand-over short, with a traceback, or with SIGTERM's handler left to the interpreter, which
    resets it at shutdown (the next SIGTERM killed the process, its result lost). A first stop that comes then is
    that block's to raise once its handlers are in place: as it starts, before its body runs; as it ends, after (a
    command's block: `power set` says the stop with what it changed), or never (the boundary's: the outcome is
    decided, and `first_stop` keeps it for the exit status).

    With `hangup_reloads` (the daemons: `controller run`, `metrics serve`) SIGHUP stops nothing: it is held until
    the daemon's own handler takes over and reloads for it (`take_held_hangup`), or ignored once that has ended.

    With `replaced` (the error boundary, `app.run`) the block's end leaves `process_exit.outcome_kept` in place of
    its handlers, and the old ones in `replaced` for `put_back`: a stop while the boundary says the outcome (a second
    Ctrl-C 10 ms after the first) changes nothing, where the old handlers printed a traceback or killed the process.
    """
    return StopBlock(hangup_reloads, replaced, later_stops_wake)


class StopBlock:
    """A `sigterm_interrupts` block: its handler (`on_stop`), the first stop that reached it, its start and its end.

    Its end ends what this process left running on the nodes when a stop reached it (~2 s at most), whether the
    stop left the block or the command reports what it stopped first (`exec`, `power set`): the agents still
    starting or open and factoryctl's own commands still running (transport/node_leftovers.py) would otherwise run
    on after this process, as sshd does not end them.
    """

    def __init__(self, hangup_reloads: bool, replaced: dict[int, Any] | None, later_stops_wake: bool = False) -> None:
        self.again = Wake()
        #: The signal of the first stop that reached the block (here or in a block nested in it), else None.
        self.first_stop: int | None = None
        self.deferred: list[int] = []  # a first stop that came while a block put its handlers in or handed them over
        self._hangup_reloads, self._replaced = hangup_reloads, replaced
        self._later_stops_wake = later_stops_wake
        self._previous: dict[int, Any] | None = None

    def __enter__(self) -> Wake:
        previous: dict[int, Any] = {}
        if not _installed(self.on_stop, previous):
            return self.again  # not the main thread: nothing to hand over at the end
        self._previous = previous
        _OPEN.append(self)
        if self.deferred:  # a stop as the handlers went in: the block ends before its body runs
            self._hand_over()
            raise _stop_exception(self.deferred[0])
        return self.again

    def __exit__(self, kind: type[BaseException] | None, stop: BaseException | None, traceback: object) -> None:
        if self._previous is None:
            return
        try:
            if isinstance(stop, _STOPPING) or self.first_stop is not None:
                _end_node_leftovers()
        finally:
            self._hand_over()
        if isinstance(stop, Terminated):  # a command that left it to the boundary (the whole run's block,
            # `app.run`), or one that came as a Ctrl-C was being handled: said, never a traceback
            status = stopped_status(stop)
            report_stopped(status)
            raise typer.Exit(status) from None
        if self.deferred and self._replaced is None and not isinstance(stop, _STOPPING):
            raise _stop_exception(self.deferred[0])  # came as the block ended: a command's block says it

    def on_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM's, SIGHUP's and Ctrl-C's handler: the first stop raises, unless a block is busy with its handlers."""
        if self._hangup_reloads and signum == _SIGHUP:
            hold_hangup(signum, frame)  # `systemctl reload` just after `start`: a reload, never exit 129
            return
        first = self.first_stop
        for block in (self, *_OPEN):
            if block.first_stop is None:
                block.first_stop = signum
        busy = _block_busy_with_its_handlers(frame)
        if busy is not None:
            if first is None and not busy.deferred:
                busy.deferred.append(signum)
        elif self._replaced is not None and _stop_on_its_way_out():
            pass  # the boundary, as a stop's clean-up runs (that stop may be another handler's: `--schedule-out`'s)
        elif first is None:
            raise _stop_exception(signum)
        elif signum == signal.SIGINT and not self._later_stops_wake:
            raise _stop_exception(first)  # a later Ctrl-C: what still runs ends, as the first stop said
        self.again.set()

    def _hand_over(self) -> None:
        """The old handlers back, or (`replaced` given) `outcome_kept` in their place and them in `replaced`."""
        previous = self._previous or {}
        if self._replaced is None:
            put_back(previous)
        else:
            for signum in previous:
                signal.signal(signum, outcome_kept)
            self._replaced.update(previous)
        with contextlib.suppress(ValueError):
            _OPEN.remove(self)


def stop_status(signum: int) -> int:
    """The exit status of a command a stop signal ended: 128 + its number (129 SIGHUP, 130 Ctrl-C, 143 SIGTERM)."""
    return 128 + signum


def _stop_exception(signum: int) -> BaseException:
    """What a stop raises: HungUp for SIGHUP, KeyboardInterrupt for Ctrl-C, else Terminated."""
    if signum == _SIGHUP:
        return HungUp()
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def _block_busy_with_its_handlers(frame: FrameType | None) -> StopBlock | None:
    """The block putting its handlers in or handing them over in the stack of `frame` (the handler's), if any."""
    while frame is not None:
        if frame.f_code in _BUSY_CODE:
            block = frame.f_locals.get("self")
            if isinstance(block, StopBlock):
                return block
        frame = frame.f_back
    return None


def _stop_on_its_way_out() -> bool:
    """Whether the code the handler interrupted handles a stop's exception (an `except` or `finally` it runs)."""
    leaving = sys.exc_info()[1]
    for _ in range(8):  # the chain a stop starts (Interrupted from KeyboardInterrupt, typer.Exit from Terminated)
        if leaving is None:
            return False
        if isinstance(leaving, _STOPPING):
            return True
        leaving = leaving.__context__
    return False


#: The code of a block's start and end, where it puts its handlers in and hands them over.
_BUSY_CODE = (StopBlock.__enter__.__code__, StopBlock.__exit__.__code__)
#: The blocks open in the main thread, outermost first: a stop that reaches one reached those around it too.
_OPEN: list[StopBlock] = []


def _installed(on_stop: Callable[[int, FrameType | None], None], previous: dict[int, Any]) -> bool:
    """`on_stop` for SIGTERM, SIGHUP (not where ignored) and Ctrl-C, the handlers replaced in `previous`; off main: False.

    Ctrl-C is taken where Python's own handler or another block's has it, else left as it is (ignored: `cmd &`).
    """
    try:
        for signum in _STOPPING_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, on_stop)
        ctrl_c = signal.getsignal(signal.SIGINT)
        if ctrl_c is signal.default_int_handler or isinstance(getattr(ctrl_c, "__self__", None), StopBlock):
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_stop)
    except ValueError:  # not the main thread: no handler can be installed
        return False
    return True


def put_back(handlers: dict[int, Any]) -> None:
    """Put `handlers` back, by signal (those a block replaced: `sigterm_interrupts`)."""
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


#: What a stop raises out of a block (a command that reports what it stopped returns its status instead).
_STOPPING = (KeyboardInterrupt, Terminated, Interrupted)


def _end_node_leftovers() -> None:
    from factoryctl.transport.node_leftovers import NODE_LEFTOVERS  # lazily: the CLI imports this module early

    NODE_LEFTOVERS.end_all()


#: The signals `sigterm_interrupts` turns into exceptions: SIGTERM, and SIGHUP where there is one (POSIX).
_STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
#: SIGHUP where there is one (POSIX), else no signal's number.
_SIGHUP = getattr(signal, "SIGHUP", None)


def signals_set(wake: Wake) -> contextlib.AbstractContextManager[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP only give `wake` (ignored ones stay so: SIGINT under `cmd &`).

    A `Wake`, never a `threading.Event`: a signal landing inside the handler of the one before blocked on the Event's
    lock for ever (signal_wake.py).
    """
    from factoryctl.store.held_signals import signals_routed

    return signals_routed(lambda signum: wake.set())
