"""The agent's output is split into lines in linear time and bounded memory (transport/agent_lines.py).

A node that sends a line without end must not grow the controller's memory or burn its CPU: past `MAX_LINE_BYTES`
the session fails with one sentence. The channel here is a plain function handing out chunks, as `chan.recv` does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from factoryctl.transport.agent_lines import READ_CHUNK, LineSplitter
from factoryctl.transport.ssh_node import _ChannelLines

MIB = 1 << 20


def chunks_of(data: bytes, sizes: Iterator[int]) -> Callable[[int], bytes]:
    """A `recv` handing out `data` in chunks of the given sizes (never more than asked), then b"" (EOF)."""
    position = 0

    def recv(most: int) -> bytes:
        nonlocal position
        size = min(next(sizes), most)
        chunk = data[position : position + size]
        position += len(chunk)
        return chunk

    return recv


def endless(byte: bytes, total: int, reads: list[int]) -> Callable[[int], bytes]:
    """A `recv` sending `byte` and never a newline (until `total`, so a reader without a limit ends too)."""
    sent = 0

    def recv(most: int) -> bytes:
        nonlocal sent
        size = min(most, total - sent)
        sent += size
        reads.append(size)
        return byte * size

    return recv


def test_lines_come_out_whole_whatever_the_chunks() -> None:
    rng = random.Random(7)
    lines = [b"x" * rng.choice([0, 1, 5, 100, 70_000, 300_000]) + b"\n" for _ in range(60)]
    data = b"".join(lines) + b"tail without newline"
    sizes = iter(lambda: rng.choice([1, 2, 3, 64, 1000, READ_CHUNK]), None)
    got = list(_ChannelLines(chunks_of(data, sizes)))
    assert got == [*lines, b"tail without newline"]


def test_a_long_line_in_many_small_chunks_is_assembled_once() -> None:
    line = bytes(range(256)).replace(b"\n", b"-") * 8192  # 2 MiB, in 2,048 chunks of 1 KiB
    got = list(_ChannelLines(chunks_of(line + b"\nnext\n", iter(lambda: 1024, None))))
    assert got == [line + b"\n", b"next\n"]


def test_an_endless_line_fails_once_past_the_limit_without_reading_on() -> None:
    reads: list[int] = []
    lines = _ChannelLines(endless(b"x", 8 * MIB, reads), limit=MIB)
    with pytest.raises(ValueError, match=r"^the agent sent a line over 1 MiB$"):
        list(lines)
    assert sum(reads) <= MIB + READ_CHUNK  # what was kept never grew past the limit and one chunk


def test_a_line_of_exactly_the_limit_is_accepted() -> None:
    data = b"y" * MIB + b"\n" + b"z" * MIB
    assert list(_ChannelLines(chunks_of(data, iter(lambda: 4096, None)), limit=MIB)) == [
        b"y" * MIB + b"\n",
        data[-MIB:],
    ]


def test_stderr_lines_are_cut_and_the_drain_goes_on() -> None:
    data = b"a" * 10_000 + b"\nlast words\n"
    got = list(_ChannelLines(chunks_of(data, iter(lambda: 3000, None)), limit=4096, cut=True))
    assert got == [b"a" * 4096 + b"\n", b"last words\n"]


def test_the_splitter_keeps_state_between_chunks() -> None:
    splitter = LineSplitter(limit=10)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\n\nf") == [b"abc\n", b"de\n", b"\n"]
    assert splitter.rest() == b"f"
    with pytest.raises(ValueError, match=r"^the agent sent a line over 10 bytes$"):
        splitter.feed(b"g" * 11)
