"""SIGTERM as an interrupt, for the commands that must report what they did when stopped (`exec`, `power set`).

cron's `timeout` and systemd stop a command with SIGTERM, whose default kills the process on the spot: an `exec`
could not interrupt its remote commands, a `power set` could not record the limits it had changed. While such a
command works, SIGTERM raises `Terminated` in it instead, which it handles as Ctrl-C, then exits 143. The handlers
are installed only for that time, never at import, and the previous ones are put back.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import typer

from factoryctl.errors import ExitCode

#: The hint under `factoryctl: interrupted` (Ctrl-C, 130) and `factoryctl: terminated` (SIGTERM, 143): like every
#: error, a stop says what to do next.
STOPPED_HINTS = {
    ExitCode.INTERRUPTED: "Ctrl-C stopped it (exit 130); run the command again for a complete result.",
    ExitCode.TERMINATED: (
        "SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command again, with more time if a "
        "time limit ended it."
    ),
}


def report_stopped(status: ExitCode, sentence: str | None = None) -> None:
    """`factoryctl: interrupted` (or `terminated`, or `sentence`) and its hint on stderr, for exit `status`."""
    word = "terminated" if status is ExitCode.TERMINATED else "interrupted"
    sys.stderr.write(f"factoryctl: {sentence or word}\nhint: {STOPPED_HINTS[status]}\n")


class Terminated(BaseException):
    """SIGTERM arrived while the command worked: it stops as for Ctrl-C, then exits 143.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way takes it for a node's failure.
    """


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[threading.Event]:
    """While the block runs, SIGTERM raises Terminated in it (the old handler is put back at its end).

    Only the first SIGTERM raises: a second one during the clean-up does not cut it short, it sets the event
    yielded (stop waiting for the commands). Outside the main thread (no handler can be installed) the block runs
    as is.
    """
    received: list[int] = []
    again = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if not received:
            received.append(signum)
            raise Terminated
        again.set()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield again
        return
    try:
        yield again
    except Terminated:  # only if it came as a Ctrl-C was being handled: too late to report, but never a traceback
        report_stopped(ExitCode.TERMINATED)
        raise typer.Exit(ExitCode.TERMINATED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def signals_set(event: threading.Event) -> contextlib.AbstractContextManager[None]:
    """While the block runs, SIGINT and SIGTERM only set `event` (SIGINT stays ignored where it was: `cmd &`)."""
    from factoryctl.store.held_signals import signals_routed

    return signals_routed(lambda signum: event.set())
