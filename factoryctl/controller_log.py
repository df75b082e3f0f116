"""The controller's log lines reach stderr through a bounded queue, so no thread that collects, stores or stops waits.

A plain `logging.StreamHandler` writes under its lock: with stderr a pipe nobody reads (journald stalled, `| less`
left at a page, `| tee` stopped), every thread that logged blocked in `write`, the store writer among them (it logs a
tick's changes before storing them) and the main loop with its `received SIGTERM: stopping`, so samples stopped and
SIGTERM did nothing. Here a record is formatted where it is logged and put in a queue of `QUEUED_LINES`; one thread
of its own writes the queue to stderr's file descriptor, and may block there alone. A full queue drops the record and
counts it; once stderr takes lines again, the count is said where they were dropped, after the lines queued before
them (`N log lines dropped: stderr was not read`).

The thread writes the descriptor with `os.write`, never through `sys.stderr` or a handler's lock: at exit, flushing a
buffered stream (or `logging.shutdown` taking a handler's lock) that a blocked thread holds would hang or abort the
interpreter. `flush` waits `FLUSH_WAIT_S` at most for what is queued, so a stderr that never drains does not hold
the exit. The lines keep the controller's one format (`OneLineFormatter`: UTC times, control characters escaped).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import TextIO, TypeAlias

from factoryctl.model.telemetry import escape_controls

#: `sys.exc_info()`'s value, as `logging.Formatter.formatException` takes it.
_ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
#: Lines held while stderr is not read (a few MiB at most); past them, lines are dropped and counted.
QUEUED_LINES = 10_000
#: The longest `flush` waits for the queued lines to be written.
FLUSH_WAIT_S = 1.5


class QueuedStderr(logging.Handler):
    """Formats each record at once and queues its line; a thread of its own writes the lines to stderr."""

    def __init__(self, stream: TextIO | None = None, capacity: int = QUEUED_LINES) -> None:
        """Write to `stream` (default: `sys.stderr`): its file descriptor when it has one, else the stream itself."""
        super().__init__()
        self._stream: TextIO | None = stream if stream is not None else sys.stderr
        try:
            self._fd: int | None = self._stream.fileno() if self._stream is not None else None
        except (AttributeError, ValueError, OSError):  # a stream with no file behind it (tests)
            self._fd = None
        self._encoding = getattr(self._stream, "encoding", None) or "utf-8"
        #: (lines dropped just before it, the line or None)
        self._lines: queue.Queue[tuple[int, str | None]] = queue.Queue(capacity)
        self._capacity = capacity
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._written = 0  # lines written so far: a flush that gave up waits no more until it grows
        self._stuck_at: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line; a full queue drops it (counted, said later). Never blocks."""
        try:
            line = self.format(record) + "\n"
        except Exception:  # as every handler: a record that cannot be formatted is logging's own error
            self.handleError(record)
            return
        self._queue(line)

    def _queue(self, line: str | None) -> None:
        """Queue `line` (None: nothing but the count of those dropped), behind the count dropped before it."""
        with self._dropped_lock:
            try:
                self._lines.put_nowait((self._dropped, line))
                self._dropped = 0
            except queue.Full:
                if line is not None:
                    self._dropped += 1

    def flush(self) -> None:
        """Wait until the queued lines are written, `FLUSH_WAIT_S` at most; at once when stderr is known stuck."""
        if self._stuck_at is not None and self._stuck_at == self._written:
            return
        if self._dropped:
            self._queue(None)  # the count of the last lines dropped, which no later line carries
        deadline = time.monotonic() + FLUSH_WAIT_S
        while self._lines.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stuck_at = self._written if self._lines.unfinished_tasks else None

    def close(self) -> None:
        """Let the thread end once it has written what is queued (`flush` waits for that); the process's exit does."""
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait((0, None))  # wakes it
        super().close()

    def _run(self) -> None:
        while not (self._closed and self._lines.empty()):
            dropped, line = self._lines.get()
            try:
                if dropped:  # said where they were dropped: after the lines queued before them
                    text = f"{dropped} log line{'' if dropped == 1 else 's'} dropped: stderr was not read"
                    text += f" (up to {self._capacity} lines are held)"
                    record = logging.LogRecord("factoryctl.controller", logging.WARNING, __file__, 0, text, None, None)
                    self._write(self.format(record) + "\n")
                if line is not None:
                    self._write(line)
            finally:
                self._lines.task_done()

    def _write(self, line: str) -> None:
        """Write one line, however long stderr takes; a stderr gone (EPIPE) loses it."""
        if self._fd is None:
            if self._stream is not None:  # None: Python started with stderr closed (`2>&-`)
                with contextlib.suppress(ValueError, OSError):  # a closed stream: the line is lost, not the thread
                    self._stream.write(line)
                    self._stream.flush()
            self._written += 1
            return
        data = line.encode(self._encoding, "backslashreplace")
        try:
            while data:
                try:
                    data = data[os.write(self._fd, data) :]
                except BlockingIOError:  # a non-blocking stderr: wait until it takes more
                    select.select([], [self._fd], [])
        except OSError:  # closed, or its reader gone: nothing can be said there any more
            return
        self._written += 1


class OneLineFormatter(logging.Formatter):
    r"""Each log record is one line: control characters in its message (newline, CR, ESC, ...) as visible `\x0a`.

    A message quotes what nodes send (an agent's error, its last words): written raw, a node could forge log lines
    of its own (a newline, then `... ERROR ...`), overwrite one (CR), or retitle or clear the terminal of whoever
    reads the log (ESC sequences). A traceback keeps the lines of its frames; its exceptions' messages, which may
    quote a node too, are one line each.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line without its traceback, escaped whole."""
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        """A traceback: its frames keep their lines, each exception's own text (a node's?) is one line, escaped."""
        if ei[1] is None:
            return _escaped_lines(super().formatException(ei))
        first = traceback.TracebackException(*ei)
        described: set[str] = set()
        chained = [first]
        while chained:
            exc = chained.pop()
            described.update(exc.format_exception_only())
            chained += [e for e in (exc.__cause__, exc.__context__) if e is not None]
        chunks = (escape_controls(c.rstrip("\n")) + "\n" if c in described else c for c in first.format())
        return _escaped_lines("".join(chunks).rstrip("\n"))

    def formatStack(self, stack_info: str) -> str:
        """A stack, each of its lines escaped."""
        return _escaped_lines(super().formatStack(stack_info))


def _escaped_lines(text: str) -> str:
    return "\n".join(escape_controls(line) for line in text.split("\n"))


def configure_logging(level: str = "info") -> None:
    """Log lines to stderr (journald adds its own timestamps, people running it by hand get ours), through a queue.

    Our timestamps are UTC with `Z`, as every other time factoryctl prints: a log read beside `events` or JSON
    output must not be hours apart from them (a local time without its offset was).
    """
    root = logging.getLogger()
    if root.handlers:  # as `logging.basicConfig`: a process that set up its logging keeps it (in-process tests)
        return
    handler = QueuedStderr()  # never blocks the thread that logs: a stderr nobody read stopped the controller
    formatter = OneLineFormatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def flush_logging() -> None:
    """Write the queued log lines before the process exits, waiting a second or two at most (`QueuedStderr.flush`)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, QueuedStderr):
            handler.flush()
