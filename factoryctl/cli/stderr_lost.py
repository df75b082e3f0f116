"""A stderr that cannot be written (a full disk, a reader gone, a hung-up terminal) loses the messages, nothing more.

Every message, warning and progress line goes to `sys.stderr`, from the command's own code, its threads and the
error boundary alike. A write there that raised (ENOSPC behind `2>/dev/full`, EPIPE from `2>&1 | head` or a
reader that exited) was taken for a failed write on stdout: the command stopped part way, the boundary said
"could not write the output" on that same stderr, which failed again, and the process ended 1, 120 or 141 with a
traceback nobody could read. docs/cli.md says a closed stderr only loses the messages: the status stays the
command's own (4 for an unreachable node, 2 for a usage error), and stdout's output is complete.

`LosesMessages` stands in for `sys.stderr` (`app.run` for its command; `app.main`, and `entry.main` for a Ctrl-C
while the CLI loads, for the process's life): a write or flush that fails loses that message, and later ones are
tried again, so a disk that was full for a moment loses a moment of messages, not the rest of a daemon's log (the
controller's log handler writes to the same descriptor). Once one has failed, the process's exit points stderr's
descriptor at /dev/null (an atexit hook, which runs before the interpreter's last flush of stderr): what is still
held for it cannot fail that flush, which made the exit 120. Bytes written past it, to `sys.stderr.buffer` (`exec
--lines`, which handles its own errors), may stay held there: they are flushed through it, at the end of `run` and
at exit.
A failed write on stdout is not its concern: the boundary still says it (exit 1) or ends quietly (141).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, cast


class LosesMessages:
    """`stream` (a process's or a test's stderr) whose writes and flushes never raise OSError: the message is lost.

    Everything else (`isatty`, `fileno`, `encoding`, `buffer`) is the stream's own.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        #: Whether a write or flush has failed (the next ones are still tried).
        self.lost = False

    def write(self, text: str) -> int:
        """`text` written, or lost: its length either way, as a write that took it all."""
        try:
            return self.stream.write(text)
        except OSError:
            self._lose()
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Each line as `write` does it."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """What the stream holds written, or lost."""
        try:
            self.stream.flush()
        except OSError:
            self._lose()

    def reconfigure(self, **settings: Any) -> None:  # noqa: ANN401 - TextIOWrapper.reconfigure's keywords
        """The stream's own `reconfigure`, once what it holds is written or lost (its flush would fail it)."""
        self.flush()
        getattr(self.stream, "reconfigure")(**settings)  # noqa: B009 - TextIO does not declare it; StringIO lacks it

    def _lose(self) -> None:
        """A message is lost: what the stream still holds of it is dropped, and so is, at exit, anything held then."""
        _drop_held(self.stream)
        if not self.lost:
            self.lost = True
            atexit.register(_nothing_held_fails, self.stream)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the stream has
        return getattr(self.stream, name)


def _nothing_held_fails(stream: TextIO) -> None:
    """At exit, after a write to `stream` failed: what it still holds is written, or dropped (never a failed flush)."""
    try:
        stream.flush()  # written if the disk has room again
    except (OSError, ValueError):
        _drop_held(stream)


def _drop_held(stream: TextIO) -> None:
    """Drop what `stream` holds unwritten: flushed into /dev/null, its descriptor then put back as it was.

    Its buffer keeps the bytes of a failed write and fails every later flush with them (the interpreter's last one
    made the exit 120); the descriptor itself is kept, so later messages reach it when it takes them again.
    """
    with _DROPPING, contextlib.suppress(OSError, ValueError):  # no descriptor (an in-process capture): none held
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            saved = os.dup(fd)
            try:
                os.dup2(devnull, fd)
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            finally:
                os.dup2(saved, fd)
                os.close(saved)
        finally:
            os.close(devnull)


#: One drop at a time: two threads failing together saved each other's /dev/null as the descriptor to put back,
#: leaving stderr at /dev/null for the rest of the process.
_DROPPING = threading.Lock()


def lose_messages_from_now() -> None:
    """`sys.stderr` loses its messages instead of raising, to the process's end (`app.main`)."""
    if not isinstance(sys.stderr, LosesMessages):
        sys.stderr = cast(TextIO, LosesMessages(sys.stderr))


@contextlib.contextmanager
def messages_only() -> Iterator[None]:
    """`sys.stderr` loses its messages instead of raising while the block runs (`app.run`: one command).

    What it holds is flushed (or lost) as the block ends; the stream that was there comes back, unless the block
    put another in its place (click's `PacifyFlushWrapper` after an EPIPE on stdout).
    """
    if isinstance(sys.stderr, LosesMessages):
        yield
        return
    guard = LosesMessages(sys.stderr)
    sys.stderr = cast(TextIO, guard)
    try:
        yield
    finally:
        guard.flush()
        if sys.stderr is cast(TextIO, guard):
            sys.stderr = guard.stream
