"""`exec --lines`: each node's output printed line by line as it arrives, prefixed with its node, like pdsh.

exec otherwise gathers every node's output and prints it once the commands are over (cli/exec_output.py); this is
the other way, its own piece because it has its own concerns: the reader threads of every node write at once, so a
line is written whole under one lock; a line without its newline is held, bounded; and stdout failing (its reader
gone, a full disk) must stop the fan-out rather than raise in a reader thread. Imported by exec only when `--lines`
is asked for, so `--help` loads nothing of it.
"""

from __future__ import annotations

import errno
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factoryctl.transport.base import OutputSink

#: A line longer than this (no newline yet) is printed in pieces by `--lines`, so that its buffer stays bounded.
LINE_LIMIT = 1 << 16


class LinePrinter:
    """`--lines`, like pdsh: every complete line printed as it arrives, prefixed with its node, from every node at once.

    Transports call `sink(node)` from their reader threads with chunks; a line is written whole under one lock, so
    lines of different nodes never mix mid-line. What is left without a newline is kept (at most LINE_LIMIT bytes per
    stream, then printed as it is) until `finish`, when the node's command is over. If stdout's reader goes away
    (`| grep -m1 ...`), `broken` is set: the fan-out stops waiting, the commands (`tail -f`) are stopped, exec exits
    141. An event, not `interrupt_main`: SIGINT is ignored in a script's background jobs (`... | head -1 &`). Any
    other failed stdout write (a full disk, `>&-`) does the same, kept in `failure`: exit 1, said (`stdout_gone`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial: dict[tuple[str, int], bytes] = {}
        self.broken = threading.Event()
        self.failure: OSError | None = None  # the first error writing stdout (BrokenPipeError: its reader left)

    def sink(self, node: str) -> OutputSink:
        """The `on_output` for one node's command."""
        return lambda stream, data: self._add(node, stream, data)

    def _add(self, node: str, stream: int, data: bytes) -> None:
        with self._lock:
            pending = self._partial.pop((node, stream), b"") + data
            complete, newline, rest = pending.rpartition(b"\n")
            if newline:
                self._write(node, stream, complete)
            if len(rest) >= LINE_LIMIT:
                self._write(node, stream, rest)
            elif rest:
                self._partial[(node, stream)] = rest

    def finish(self, node: str) -> None:
        """The node's command is over: print its last line even without a newline."""
        with self._lock:
            for stream in (1, 2):
                rest = self._partial.pop((node, stream), b"")
                if rest:
                    self._write(node, stream, rest)

    def _write(self, node: str, stream: int, lines: bytes) -> None:
        """`node: line` for each line, as bytes: what is not UTF-8 passes through as it came, as pdsh passes it."""
        from factoryctl.cli.render import write_bytes_whole

        if stream == 1 and self.failure is not None:
            return  # stdout failed: the commands are being stopped, and their output goes nowhere
        out = sys.stdout if stream == 1 else sys.stderr
        prefix = f"{node}: ".encode()
        data = prefix + (b"\n" + prefix).join(lines.split(b"\n")) + b"\n"  # one join: 2x faster than a line loop
        try:
            buffer = getattr(out, "buffer", None)
            if buffer is None:  # not a real file (an in-process capture): text only
                out.write(data.decode("utf-8", "replace"))
                out.flush()
            else:
                out.flush()  # what the text layer holds goes first
                write_bytes_whole(buffer, data)
        except (OSError, ValueError) as error:
            if stream == 1:  # fan_out raises Cancelled: the commands are stopped, exec exits 141 or says it (exit 1)
                closed = OSError(errno.EBADF, "the stream is closed")  # a file object closed: ValueError
                self.failure = error if isinstance(error, OSError) else closed
                self.broken.set()
