"""Review 13: a prices, curve or trace file was read whole into memory before any byte was checked.

`--prices /dev/zero` grew without end and ignored SIGTERM, `/dev/urandom` was read for gigabytes before its first bad
byte was named, and an endless `yes` never stopped. Input is now read in chunks through an incremental UTF-8
decoder: a bad byte or a NUL byte is refused when its chunk arrives, a CSV header is checked as soon as its line is
complete, SIGTERM acts between chunks, and an input past MAX_TEXT_BYTES is refused with a sentence. The pipes below
are fed by a thread that stops at the reader's close, so "stopped early" is counted in bytes, never timed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from factoryctl import textfile
from factoryctl.cli.signals import sigterm_interrupts
from factoryctl.errors import UsageError
from factoryctl.power.sources import read_price_csv
from factoryctl.textfile import read_text_stream, read_utf8

PIECE = 64 * 1024
TOTAL = 64 * 1024 * 1024  # far more than the reader may take before refusing


class Feeder(threading.Thread):
    """Writes `head` then `filler` repeated to a FIFO until TOTAL bytes or the reader closes it; counts bytes."""

    def __init__(self, fifo: Path, head: bytes, filler: bytes) -> None:
        super().__init__(daemon=True)
        self.fifo, self.head, self.filler, self.written = fifo, head, filler, 0

    def run(self) -> None:
        piece = self.filler * (PIECE // len(self.filler))
        try:
            with self.fifo.open("wb", buffering=0) as out:
                out.write(self.head)
                self.written = len(self.head)
                while self.written < TOTAL:
                    self.written += out.write(piece) or 0
        except BrokenPipeError:
            pass


def fed_fifo(tmp_path: Path, head: bytes, filler: bytes) -> tuple[Path, Feeder]:
    fifo = tmp_path / "input.csv"
    os.mkfifo(fifo)
    feeder = Feeder(fifo, head, filler)
    feeder.start()
    return fifo, feeder


def test_a_bad_byte_is_refused_when_it_arrives_not_after_the_whole_input(tmp_path):
    fifo, feeder = fed_fifo(tmp_path, b"timestamp_utc,price_per_mwh\n\xff", b"y\n")
    with pytest.raises(UsageError) as refused:
        read_utf8(fifo, "prices file", "check the path.")
    feeder.join(timeout=60)
    assert refused.value.message == f"{fifo}:2: the prices file is not UTF-8 text (byte 0xff)."
    assert feeder.written < 8 * 1024 * 1024


def test_an_endless_input_of_the_wrong_shape_fails_at_its_header_line(tmp_path):
    fifo, feeder = fed_fifo(tmp_path, b"", b"y\n")
    with pytest.raises(UsageError) as refused:
        read_price_csv(fifo)
    feeder.join(timeout=60)
    assert refused.value.message == (
        f"{fifo}:1: the prices file lacks column(s) timestamp_utc, price_per_mwh; its header is 'y'"
    )
    assert feeder.written < 8 * 1024 * 1024


def test_a_nul_byte_means_not_a_text_file_at_its_line(tmp_path):
    path = tmp_path / "zero.csv"
    path.write_bytes(b"timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,1\n" + b"\0" * 4096)
    with pytest.raises(UsageError) as refused:
        read_price_csv(path)
    assert refused.value.message == f"{path}:3: the prices file holds a NUL byte, so it is not a text file."
    assert refused.value.hint == "check that this is the prices file you meant; it must be UTF-8 text."


def test_an_input_past_the_size_limit_is_refused_with_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(textfile, "MAX_TEXT_BYTES", 2 * 1024 * 1024)
    fifo, feeder = fed_fifo(tmp_path, b"timestamp_utc,price_per_mwh\n", b"2023-01-01T00:00:00Z,1\n")
    with pytest.raises(UsageError) as refused:
        read_utf8(fifo, "prices file", "check the path.")
    feeder.join(timeout=60)
    assert refused.value.message == (
        f"{fifo}: the prices file is larger than 2 MiB, far more than any real one, so reading stopped there."
    )
    assert feeder.written < 8 * 1024 * 1024


class EndlessStream:
    """A binary stream of `y\\n` for ever, which sends this process SIGTERM at its third read; counts reads."""

    def __init__(self) -> None:
        self.reads = 0

    def read1(self, size: int) -> bytes:
        self.reads += 1
        if self.reads == 3:
            signal.raise_signal(signal.SIGTERM)
        return b"y\n" * (size // 2)


def test_sigterm_stops_the_reading_between_chunks():
    stream = EndlessStream()
    with pytest.raises(typer.Exit) as stopped, sigterm_interrupts():
        read_text_stream(stream, "stdin", "prices file")  # type: ignore[arg-type]
    assert stopped.value.exit_code == 143
    assert stream.reads <= 4


def _chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_characters_split_across_reads_decode_and_bad_bytes_keep_their_line(size):
    text = "\ufeffa,b\nprix,é€😀\n"
    pieces = _chunks_of(text.encode("utf-8"), size)

    class Split:
        def read1(self, _: int) -> bytes:
            return next(pieces, b"")

    assert read_text_stream(Split(), "x.csv", "trace") == text.removeprefix("\ufeff")  # type: ignore[arg-type]
    pieces = _chunks_of(b"a\nb\n\xe2\x82", size)  # ends inside a character
    with pytest.raises(UsageError) as refused:
        read_text_stream(Split(), "x.csv", "trace")  # type: ignore[arg-type]
    assert refused.value.message == "x.csv:3: the trace is not UTF-8 text (byte 0xe2)."


def test_an_endless_stdin_of_the_wrong_shape_fails_at_its_header_line_too():
    """`yes | factoryctl price history --prices -`: stdin's header is checked as a file's is (regression review)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "price", "history", "--prices", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    written = 0
    piece = b"y\n" * (PIECE // 2)
    try:
        while written < TOTAL:
            proc.stdin.write(piece)
            written += len(piece)
    except BrokenPipeError:
        pass
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 2, err
    assert b"stdin:1: the prices file lacks column(s) timestamp_utc, price_per_mwh; its header is 'y'" in err
    assert written < 8 * 1024 * 1024
