"""A local agent's idle output reader does not wait inside a 64 KiB read, and reads a whole chunk of a full pipe.

CPython's `read1(n)` allocates its n-byte result before it waits on an empty pipe: asking 64 KiB (READ_CHUNK) of
every idle agent pipe held 128 KiB per local node for as long as its agent was quiet, 8.3 MiB of a controller of 64
local nodes (session 25's budgets). The pipes here are real; the reader only records what each `read1` was asked.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Iterator

import pytest

from factoryctl.transport.agent_lines import MAX_LINE_BYTES, READ_CHUNK
from factoryctl.transport.local import _lines_of

#: The longest a test waits for the reader thread to get somewhere (never reached when it works).
_WAIT_S = 30.0


class _Asked(io.BufferedReader):
    """A pipe's buffered reader (as Popen makes it) that reports each read it is asked for, before it reads."""

    def __init__(self, fd: int) -> None:
        super().__init__(io.FileIO(fd, "rb"))
        self.asked: queue.Queue[tuple[str, int]] = queue.Queue()

    def read1(self, size: int = -1, /) -> bytes:
        self.asked.put(("read1", size))
        return super().read1(size)

    def peek(self, size: int = 0, /) -> bytes:
        self.asked.put(("peek", size))  # waits in the buffer it has: allocates nothing while the pipe is empty
        return super().peek(size)


class _Pipe:
    """A real pipe: its reading end as `_Asked`, its writing end as a descriptor closed once (`close_write`)."""

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self.reader = _Asked(read_fd)
        self._write_open = True
        self._lock = threading.Lock()

    def close_write(self) -> None:
        """Close the writing end (the reader sees EOF), unless it was closed already: never a reused number."""
        with self._lock:
            if self._write_open:
                self._write_open = False
                os.close(self.write_fd)


@pytest.fixture
def pipe() -> Iterator[_Pipe]:
    made = _Pipe()
    yield made
    made.close_write()
    made.reader.close()


def test_an_idle_reader_does_not_ask_for_a_whole_chunk(pipe: _Pipe) -> None:
    reader = pipe.reader
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        for line in _lines_of(reader, MAX_LINE_BYTES):
            lines.put(line)
        lines.put(None)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    waits_in = reader.asked.get(timeout=_WAIT_S)  # the pipe is empty: the reader waits in this read
    assert waits_in != ("read1", READ_CHUNK)
    long_line = b"x" * (3 * READ_CHUNK) + b"\n"

    def write() -> None:  # more than the pipe holds: its write waits for the reader
        os.write(pipe.write_fd, long_line + b"partial")
        pipe.close_write()

    threading.Thread(target=write, daemon=True).start()
    got = []
    while (line := lines.get(timeout=_WAIT_S)) is not None:
        got.append(line)
    thread.join(_WAIT_S)
    assert got == [long_line, b"partial"]  # the long line whole, then the last one without its newline at EOF


def test_a_pipe_that_holds_output_is_read_a_whole_chunk_at_a_time(pipe: _Pipe) -> None:
    os.write(pipe.write_fd, b"hello\n" * 1000)  # there before the first read
    batches = _lines_of(pipe.reader, MAX_LINE_BYTES).batches()
    assert next(batches) == [b"hello\n"] * 1000
    assert pipe.reader.asked.get_nowait() == ("read1", READ_CHUNK)
