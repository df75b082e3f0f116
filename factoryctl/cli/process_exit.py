"""How a factoryctl process ends: standard streams closed at start, stops once decided, threads left by a stop.

The error boundary (`app.run`) decides the exit status; this module makes the process end with it, whatever happens
after: a standard stream closed at start (`2>&-`, which Python sets to None) must not crash the first write, a
stop signal (Ctrl-C, SIGTERM, SIGHUP) once the command's block has ended or while the interpreter shuts down must
neither print a traceback nor change the status nor kill the process, and a stopped command's worker threads must
not abort the interpreter's teardown. None of that is a command's concern, nor the boundary's.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
from types import FrameType
from typing import TextIO

from factoryctl.errors import ExitCode


def silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for it can no longer be written anyway."""
    _to_devnull(sys.stdout)


def silence_stderr() -> None:
    """Point stderr at /dev/null: its terminal hung up (EIO), and what is buffered for it cannot be written either."""
    _to_devnull(sys.stderr)


def _to_devnull(stream: TextIO) -> None:
    """Point the file descriptor of `stream` at /dev/null (a stream with none is left as it is)."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (`_ClosedStream`): left as it is
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


class _ClosedStream(io.TextIOBase):
    """What writes to a standard stream that was closed (`2>&-`, `>&-`) meet: EBADF, as the shell's own tools do."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "the stream is closed (started with `>&-`)")

    def isatty(self) -> bool:
        return False


def stand_in_for_closed_streams() -> None:
    """Python sets a standard stream that was closed at start to None, and every write or `isatty()` then crashes.

    A closed stderr gets /dev/null: nobody reads the messages, and stdout's output still goes out. A closed stdout
    gets a stream whose writes fail with EBADF, said on stderr as any output failure (exit 1).
    """
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process's life
    if sys.stdout is None:
        sys.stdout = _ClosedStream()


def outcome_kept(signum: int, frame: FrameType | None) -> None:
    """A stop (Ctrl-C, SIGTERM, SIGHUP) once the command's block has ended: the outcome stands, said as decided.

    `app.run` leaves it in place of the CLI's handlers from then on (`signals.sigterm_interrupts`), `app.main` until
    the process ends: a second Ctrl-C while the first was said printed a KeyboardInterrupt traceback, and a SIGTERM
    or SIGHUP after the command ended killed the process (no status, a sentence cut short). From the exit handlers
    on, the stop ends the process at once with the status decided (`exit_now_on_interrupt`).
    """


def exit_now_on_interrupt(status: int) -> None:
    """From the interpreter's shutdown on, a Ctrl-C ends the process at once with `status`, the outcome decided.

    Shutdown runs exit handlers (paramiko's stops its transports' threads): a second Ctrl-C landing in one printed a
    traceback under the result ("Exception ignored in atexit callback"). Installed as an exit handler itself, the
    last registered so the first run, so that a caller of `main()` in the same process keeps its own Ctrl-C. SIGTERM
    and SIGHUP do the same where `outcome_kept` takes them (`app.main`).
    """
    import atexit

    atexit.register(_exit_with_on_interrupt, status)


def ignore_interrupts_at_the_very_end() -> list[int]:
    """Once the exit handlers have run, a Ctrl-C is ignored: the process ends with the status already decided.

    After them the interpreter puts SIGINT back to its default and tears its modules down (tens of milliseconds
    with a replay's jobs in memory): a Ctrl-C there killed the process, an exit by signal (130 to the shell) after
    complete output, and no sentence. Registered first, before anything the command imports, so it runs last.
    SIGTERM and SIGHUP are ignored from then on too where the outcome was kept for them (`outcome_kept`).

    A stopped command (129, 130, 143: `main` puts its status in the list returned) may leave worker threads inside
    a node's connection: the interpreter's teardown then ends them with pthread_exit, which aborted the process once
    in fresh-clone CI (SIGABRT, "FATAL: exception not rethrown", after the right sentence). Its output is complete and
    every exit handler has run by then, so such a process ends at once with its status (`end_stopped`).
    """
    import atexit

    decided: list[int] = []

    def ignore() -> None:
        with contextlib.suppress(ValueError):  # not the main thread (an embedding caller): nothing to protect
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for signum in _STOPS:  # SIGTERM, SIGHUP too where the outcome was kept for them (`outcome_kept`)
                handler = signal.getsignal(signum)
                if handler is outcome_kept or isinstance(handler, _LeaveWith):
                    signal.signal(signum, signal.SIG_IGN)
        end_stopped(decided)

    atexit.register(ignore)
    return decided


#: The statuses of a command a signal stopped (SIGHUP, Ctrl-C, SIGTERM), whose workers may still be running.
_STOPPED = frozenset({int(ExitCode.HUNG_UP), int(ExitCode.INTERRUPTED), int(ExitCode.TERMINATED)})


def end_stopped(decided: list[int]) -> None:
    """`os._exit` with a stopped command's status while other threads still run, its streams flushed; else nothing."""
    import threading

    if not decided or decided[-1] not in _STOPPED or threading.active_count() <= 1:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(decided[-1])


#: The signals that stop a command: Ctrl-C, SIGTERM, and SIGHUP where there is one (POSIX).
_STOPS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _LeaveWith:
    """The handler of a stop during shutdown: the process ends at once with `status`, its streams flushed."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: it landed inside a write
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(self.status)


def _exit_with_on_interrupt(status: int) -> None:
    leave = _LeaveWith(status)
    with contextlib.suppress(ValueError):  # not the main thread (an embedding caller): nothing to protect
        for signum in _STOPS:
            handler = signal.getsignal(signum)
            if handler is outcome_kept or (signum == signal.SIGINT and handler is signal.default_int_handler):
                signal.signal(signum, leave)
