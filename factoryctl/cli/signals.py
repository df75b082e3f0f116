"""SIGTERM and SIGHUP as interrupts, and how a stopped command says so (`factoryctl: interrupted`, `terminated`, a hint).

cron's `timeout` and systemd stop a command with SIGTERM, and a closed terminal sends SIGHUP; by default both kill
the process silently, so commands could neither clean up nor say they were stopped. While the CLI runs (`app.run`),
SIGTERM raises `Terminated` and SIGHUP `HungUp` instead: the commands that must report what they did (`exec`,
`power set`) handle them as Ctrl-C, the others end at the error boundary, which says `terminated` (exit 143) or
`hung up` (129). A signal ignored where factoryctl started (`nohup`) stays ignored. The handlers are installed only
for that time, never at import, and the previous ones are put back. The daemons (`controller run`, `metrics serve`)
reload on SIGHUP, from the CLI's start: one that comes before their handler is in place is held for it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def sigterm_interrupts(hangup_reloads: bool = False, replaced: dict[int, Any] | None = None) -> Iterator[Wake]:
    """While the block runs, SIGTERM raises Terminated in it, SIGHUP HungUp (the old handlers are put back at its end).

    Only the first of them raises: a second one during the clean-up does not cut it short, it gives the `Wake`
    yielded (stop waiting for the commands), which takes no lock: a third signal can land inside the second's
    handler, and a `threading.Event` there hung the command for ever (signal_wake.py). A signal ignored where
    factoryctl started (`nohup`, a service's SIGTERM ignored) stays ignored. Outside the main thread (no handler can
    be installed) the block runs as is.

    With `hangup_reloads` (the daemons: `controller run`, `metrics serve`) SIGHUP stops nothing: it is held until
    the daemon's own handler takes over and reloads for it (`take_held_hangup`), or ignored once that has ended.

    With `replaced` (the error boundary, `app.run`) the block's end leaves `process_exit.outcome_kept` in place of
    its handlers, in one step, and the old ones in `replaced` for `put_back`: a stop while the boundary says the
    outcome (a second Ctrl-C 10 ms after the first) changes nothing, where the old handlers printed a traceback or
    killed the process.
    """
    received: list[int] = []
    again = Wake()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if hangup_reloads and signum == getattr(signal, "SIGHUP", None):
            hold_hangup(signum, frame)  # `systemctl reload` just after `start`: a reload, never exit 129
            return
        _STOPS_SEEN[0] += 1
        if not received:
            received.append(signum)
            raise HungUp if signum == getattr(signal, "SIGHUP", None) else Terminated
        again.set()

    previous = _installed(on_term)
    if previous is None:  # not the main thread
        yield again
        return
    try:
        with _ending_node_leftovers():
            yield again
    except Terminated as stopped:  # a command that left it to the boundary (the whole run's block, `app.run`), or
        # one that came as a Ctrl-C was being handled (too late to report what it stopped): said, never a traceback
        status = stopped_status(stopped)
        report_stopped(status)
        raise typer.Exit(status) from None
    finally:
        _handed_over(previous, replaced)


def _installed(on_term: Callable[[int, FrameType | None], None]) -> dict[int, Any] | None:
    """`on_term` for SIGTERM and SIGHUP (not where ignored), counted Ctrl-C; the handlers replaced, None off main."""
    previous: dict[int, Any] = {}
    try:
        for signum in _STOPPING_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, on_term)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # counted too, else as it was
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _counted_interrupt)
    except ValueError:  # not the main thread: no handler can be installed
        return None
    return previous


def _handed_over(previous: dict[int, Any], replaced: dict[int, Any] | None) -> None:
    """The block's end: `previous` back, or (`replaced` given) `outcome_kept` in their place and them in `replaced`."""
    if replaced is None:
        put_back(previous)
        return
    for signum in previous:
        signal.signal(signum, outcome_kept)
    replaced.update(previous)


def put_back(handlers: dict[int, Any]) -> None:
    """Put `handlers` back, by signal (those a block replaced: `sigterm_interrupts`)."""
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


#: How many stopping signals (SIGINT, SIGTERM, SIGHUP) reached a `sigterm_interrupts` block of this process.
_STOPS_SEEN = [0]
#: What a stop raises out of a block (a command that reports what it stopped returns its status instead).
_STOPPING = (KeyboardInterrupt, Terminated, Interrupted)


def _counted_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C as Python's own handler has it (KeyboardInterrupt), counted among the stops first."""
    _STOPS_SEEN[0] += 1
    signal.default_int_handler(signum, frame)


@contextlib.contextmanager
def _ending_node_leftovers() -> Iterator[None]:
    """A block that a stop reached ends, at its end, what this process left running on the nodes (~2 s at most).

    A stop is Ctrl-C, SIGTERM or SIGHUP during the block, whether it leaves the block or the command reports what
    it stopped first (`exec`, `power set`): the agents still starting or open and factoryctl's own commands still
    running (transport/node_leftovers.py) would otherwise run on after this process, as sshd does not end them.
    """
    before = _STOPS_SEEN[0]
    leaving: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        leaving = exc
        raise
    finally:
        if isinstance(leaving, _STOPPING) or _STOPS_SEEN[0] != before:
            _end_node_leftovers()


def _end_node_leftovers() -> None:
    from factoryctl.transport.node_leftovers import NODE_LEFTOVERS  # lazily: the CLI imports this module early

    NODE_LEFTOVERS.end_all()


#: The signals `sigterm_interrupts` turns into exceptions: SIGTERM, and SIGHUP where there is one (POSIX).
_STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def signals_set(wake: Wake) -> contextlib.AbstractContextManager[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP only give `wake` (ignored ones stay so: SIGINT under `cmd &`).

    A `Wake`, never a `threading.Event`: a signal landing inside the handler of the one before blocked on the Event's
    lock for ever (signal_wake.py).
    """
    from factoryctl.store.held_signals import signals_routed

    return signals_routed(lambda signum: wake.set())
