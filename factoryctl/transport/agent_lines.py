"""The one rule for reading an agent's output as lines, whatever carries it: an SSH channel or a local pipe.

A node that sends a line without end must not grow this process's memory or burn its CPU, and the same agent must
fail the same way over either transport (docs/security.md: a line from an agent is at most 16 MiB). Both transports
read the agent's stdout and stderr through `AgentLines`, handing it their own `recv` (a channel's `recv`, a pipe's
`PipeRecv`), so the limits and the words of the error live here once.
"""

from __future__ import annotations

import io
import select
from collections.abc import Callable, Iterator

#: Bytes asked of the channel (or pipe) per read of the agent's output.
READ_CHUNK = 1 << 16
#: The longest line the agent may send. Its largest reply, a sample of 64 GPUs that each run 1,000 processes, is
#: under 10 MiB (about 30 KiB without processes); past this the session fails rather than grow without bound.
MAX_LINE_BYTES = 16 << 20
#: The agent's stderr only feeds the "last words" of an error: a longer line is cut to this and draining goes on.
MAX_STDERR_LINE = 4096


class LineTooLong(ValueError):
    """The agent sent more than the limit without a newline (the session fails with this as its reason)."""

    def __init__(self, limit: int) -> None:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
        super().__init__(f"the agent sent a line over {size}")


class LineSplitter:
    """Bytes in, lines out, in linear time and bounded memory.

    Each chunk is searched for newlines once, from where the last search stopped, and an unfinished line is kept as a
    list of pieces joined once when its newline comes. Adding every chunk to the pending bytes and splitting the lot
    again copied and searched the whole line per chunk: a 64 MiB line cost 35 s of CPU, and a line without end grew
    until memory ran out. A line longer than `limit` (its newline not counted) raises `LineTooLong`, or with `cut`
    is cut to `limit` bytes and the rest of it dropped.
    """

    def __init__(self, limit: int, cut: bool = False) -> None:
        self.limit = limit
        self.cut = cut
        self._pieces: list[bytes] = []
        self._size = 0
        self._dropping = False  # `cut`: the rest of a line already cut is dropped up to its newline

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines `chunk` completes, each with its newline.

        The first piece ends the line under way; the lines wholly inside the chunk are split off at C speed (many
        short lines must not cost a Python call each); what follows the last newline starts the next line.
        """
        lines: list[bytes] = []
        first, newline, rest = chunk.partition(b"\n")
        if not newline:
            self._add(chunk, lines)
            return lines
        self._add(first + newline, lines)
        self._end_line(lines)
        *whole, tail = rest.split(b"\n")
        for line in whole:
            if len(line) <= self.limit:
                lines.append(line + b"\n")
            else:
                self._add(line + b"\n", lines)
                self._end_line(lines)
        if tail:
            self._add(tail, lines)
        return lines

    def rest(self) -> bytes:
        """What came after the last newline (at EOF: the last line, which lacks it)."""
        rest = b"".join(self._pieces)
        self._pieces.clear()
        self._size = 0
        return b"" if self._dropping else rest

    def _add(self, piece: bytes, lines: list[bytes]) -> None:
        if self._dropping:
            return
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size - (1 if piece.endswith(b"\n") else 0) <= self.limit:
            return
        if not self.cut:
            self._pieces.clear()  # the error's traceback must not keep the line alive
            raise LineTooLong(self.limit)
        lines.append(self.rest()[: self.limit] + b"\n")
        self._dropping = True

    def _end_line(self, lines: list[bytes]) -> None:
        if self._dropping:
            self._dropping = False
        elif self._pieces:
            lines.append(self.rest())


class AgentLines:
    """The agent's stdout (or stderr) read as lines by `recv`, for its session; `close` never waits for a read.

    `recv(n)` returns at most n bytes, b"" at the end: a channel's `recv`, a pipe's `PipeRecv`. Not a file object, and
    without a finalizer: over SSH a failed session is kept until exit by its error's traceback, and paramiko's
    ChannelFile's `__del__` could then run after its buffer was torn down, printing "Exception ignored in ...". Lines
    are split by `LineSplitter`: a line over `limit` ends the iteration with `LineTooLong` (a ValueError, which the
    session turns into its failure, so the node reconnects), or with `cut` is cut short.
    """

    def __init__(self, recv: Callable[[int], bytes], limit: int = MAX_LINE_BYTES, cut: bool = False) -> None:
        self._recv = recv
        self._limit = limit
        self._cut = cut
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        """Each line with its newline (the last one may lack it), until EOF, the stream's close, or `close`."""
        for lines in self.batches():
            yield from lines

    def batches(self) -> Iterator[list[bytes]]:
        """The lines each read completes (a list per read, maybe empty), then the last one if it lacks its newline.

        For a reader that looks at the lines of a read together (the SSH transport drops those ahead of its marker).
        """
        splitter = LineSplitter(self._limit, self._cut)
        while not self.closed:
            chunk = self._recv(READ_CHUNK)  # b"" at EOF (and, for a channel, once it is closed)
            if not chunk:
                break
            yield splitter.feed(chunk)
        last = splitter.rest()
        if last and not self.closed:
            yield [last]

    def close(self) -> None:
        """Stop at the next chunk (closing what `recv` reads ends a read under way)."""
        self.closed = True


class PipeRecv:
    """A local agent's pipe as `AgentLines`' `recv`: its `read1`, waiting for output in the pipe's own buffer.

    CPython's `read1(n)` allocates its n-byte result before it waits on an empty pipe, so a reader asking READ_CHUNK
    held 64 KiB for as long as its agent said nothing: stdout and stderr of each local agent, 8.3 MiB of a controller
    of 64 local nodes. An empty pipe (a poll that takes no time says so) is waited on in `peek`, which reads into the
    buffer the reader already has (8 KiB) and allocates nothing while it waits; `read1` then takes what came, or
    READ_CHUNK of a pipe that holds more. The wait stays inside the buffered reader, as before: the pipe's end (EOF)
    ends it, and closing the pipe still waits for it. About as much CPU per line as one `read1` (4 KiB lines).
    """

    def __init__(self, pipe: io.BufferedReader) -> None:
        self._pipe = pipe
        self._poll = select.poll()  # one per reader (a thread's own): not made again per read
        self._poll.register(pipe.fileno(), select.POLLIN | select.POLLPRI)

    def __call__(self, size: int) -> bytes:
        """At most `size` bytes, b"" at EOF: the pipe's `read1`, after waiting in `peek` if the pipe held nothing."""
        if not self._poll.poll(0):
            self._pipe.peek(1)  # returns once something (or EOF) is in the buffer
        return self._pipe.read1(size)
