"""A stderr that cannot be written (a full disk, a reader gone, a hung-up terminal) loses the messages, nothing more.

Every message, warning and progress line goes to `sys.stderr`, from the command's own code, its threads and the
error boundary alike. A write there that raised (ENOSPC behind `2>/dev/full`, EPIPE from `2>&1 | head` or a
reader that exited) was taken for a failed write on stdout: the command stopped part way, the boundary said
"could not write the output" on that same stderr, which failed again, and the process ended 1, 120 or 141 with a
traceback nobody could read. docs/cli.md says a closed stderr only loses the messages: the status stays the
command's own (4 for an unreachable node, 2 for a usage error), and stdout's output is complete.

`LosesMessages` stands in for `sys.stderr` (`app.run` for its command; `app.main`, and `entry.main` for a Ctrl-C
while the CLI loads, for the process's life): the first write or flush that fails points stderr's file descriptor
at /dev/null, so that nothing buffered for it can fail again (the interpreter's last flush of stderr would make the
exit 120), and every later message is dropped. Bytes written past it, to `sys.stderr.buffer` (`exec --lines`, which
handles its own errors), may stay held there: they are flushed through it, at the end of `run` and at exit.
A failed write on stdout is not its concern: the boundary still says it (exit 1) or ends quietly (141).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, cast


class LosesMessages:
    """`stream` (a process's or a test's stderr) whose writes and flushes never raise OSError: the message is lost.

    Everything else (`isatty`, `fileno`, `encoding`, `buffer`) is the stream's own.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        """`text` written, or lost: its length either way, as a write that took it all."""
        if self.lost:
            return len(text)
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
        if self.lost:
            return
        try:
            self.stream.flush()
        except OSError:
            self._lose()

    def reconfigure(self, **settings: Any) -> None:  # noqa: ANN401 - TextIOWrapper.reconfigure's keywords
        """The stream's own `reconfigure`, once what it holds is written or lost (its flush would fail it)."""
        self.flush()
        getattr(self.stream, "reconfigure")(**settings)  # noqa: B009 - TextIO does not declare it; StringIO lacks it

    def _lose(self) -> None:
        """From now on stderr is /dev/null: what its buffer holds goes there, and later messages are dropped."""
        self.lost = True
        with contextlib.suppress(OSError, ValueError):  # no file descriptor (an in-process capture): nothing held
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.stream.fileno())
            finally:
                os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()  # what was held goes to /dev/null now, not at the interpreter's exit

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the stream has
        return getattr(self.stream, name)


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
