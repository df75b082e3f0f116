"""Review 21 of the trace loader and `sched simulate`/`sched explain`'s trace handling.

The loader held the trace's whole text, a list of its lines and the parsed jobs at once (902 MB for 2.5M rows,
about 14 GB near the 1 GiB limit): it now parses the lines as they are read and keeps only the jobs. A line of
spaces between rows was refused as a one-field row while an empty line was skipped. A job whose trace fixes its
node count was told to add GPUs per node, which cannot help it. `--trace a --trace b` replayed b alone, silently.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl import textfile
from factoryctl.cli.sched import read_trace
from factoryctl.errors import UsageError
from factoryctl.scheduler.trace import parse_trace
from factoryctl.textfile import text_lines

HEADER = "job_id,submit_time_s,duration_s,num_gpus"
SHAPED = f"{HEADER},num_nodes,gpus_per_node"
TOTAL = 64 * 1024 * 1024  # far more than the reader may take before refusing


class Feeder(threading.Thread):
    """Writes `head` then `filler` repeated to a FIFO until TOTAL bytes or the reader closes it; counts bytes."""

    def __init__(self, fifo: Path, head: bytes, filler: bytes) -> None:
        super().__init__(daemon=True)
        self.fifo, self.head, self.filler, self.written = fifo, head, filler, 0

    def run(self) -> None:
        piece = self.filler * (64 * 1024 // len(self.filler))
        try:
            with self.fifo.open("wb", buffering=0) as out:
                self.written = out.write(self.head) or 0
                while self.written < TOTAL:
                    self.written += out.write(piece) or 0
        except BrokenPipeError:
            pass


class Reads:
    """A binary stream that hands out the given pieces, one per read (`read1`), as a pipe may."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = iter(pieces)

    def read1(self, _: int) -> bytes:
        return next(self.pieces, b"")


# -- the loader streams -------------------------------------------------------------------------------------------


def test_rows_are_parsed_as_their_lines_arrive() -> None:
    taken = 0

    def lines() -> Iterator[str]:
        nonlocal taken
        for line in [HEADER, "a,0,10,1", "b,0,-1,1"] + [f"j{i},0,10,1" for i in range(10_000)]:
            taken += 1
            yield line

    with pytest.raises(UsageError) as refused:
        parse_trace(lines(), source="t.csv")
    assert refused.value.message == "t.csv:3: duration_s is -1 but must not be negative"
    assert taken <= 4  # the bad row and one line of look-ahead, not the 10,003 lines


def test_a_bad_row_on_a_fifo_stops_the_reading_there(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.csv"
    os.mkfifo(fifo)
    feeder = Feeder(fifo, f"{HEADER}\na,0,-1,1\n".encode(), b"b,0,10,1\n")
    feeder.start()
    with pytest.raises(UsageError) as refused:
        read_trace(fifo, quiet=True)
    feeder.join(timeout=60)
    assert refused.value.message == f"{fifo}:2: duration_s is -1 but must not be negative"
    assert feeder.written < 8 * 1024 * 1024  # the old loader read all 64 MiB first


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_line_ends_and_a_byte_order_mark_read_alike_across_reads(tmp_path, monkeypatch, end, bom) -> None:
    monkeypatch.setattr(textfile, "CHUNK_BYTES", 7)  # a CRLF, a row and the BOM split between reads
    rows = [HEADER, *(f"j{i},{i},10,{i % 3 + 1}" for i in range(50)), '"q\nr",0,1,1']
    path = tmp_path / "t.csv"
    path.write_bytes((bom + end.join(rows) + end).encode())
    jobs = read_trace(path, quiet=True)
    assert [job.job_id for job in jobs] == [f"j{i}" for i in range(50)] + ["q\nr"]
    assert [job.num_gpus for job in jobs[:4]] == [1, 2, 3, 1]


def test_text_lines_splits_as_splitlines_however_the_reads_fall() -> None:
    pieces = ["a", "b", ",", "\n", "\r", "\r\n", "\x85", "\u2028", "\x0c", "é", "😀", " "]
    rng = random.Random(21)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        data = text.encode()
        cuts = sorted(rng.sample(range(1, len(data)), min(max(len(data) - 1, 0), rng.randint(0, 8))))
        reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert list(text_lines(Reads(reads), "x", "trace")) == text.splitlines(keepends=True), text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (f"{HEADER}\na,0,1,1\n".encode() + b"b,\xff,1,1\n", "t.csv:3: the trace is not UTF-8 text (byte 0xff)."),
        (f"{HEADER}\na,0,1,1\n".encode() + b"\0", "t.csv:3: the trace holds a NUL byte, so it is not a text file."),
        (b"\x1f\x8b\x08\x00" + bytes(20), "t.csv: the trace looks gzip-compressed, not UTF-8 text."),
        ("job_id\n".encode("utf-16"), "t.csv: the trace is UTF-16 text"),
    ],
)
def test_the_input_checks_keep_their_words(tmp_path, data, message) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    with pytest.raises(UsageError) as refused:
        read_trace(path, quiet=True)
    assert refused.value.message.replace(str(path), "t.csv").startswith(message)


def test_the_size_limit_still_holds(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(textfile, "MAX_TEXT_BYTES", 2 * 1024 * 1024)
    monkeypatch.setattr(textfile, "CHUNK_BYTES", 64 * 1024)
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "\n" + "".join(f"j{i},0,1,1\n" for i in range(400_000)))
    with pytest.raises(UsageError) as refused:
        read_trace(path, quiet=True)
    assert refused.value.message == (
        f"{path}: the trace is larger than 2 MiB, far more than any real one, so reading stopped there."
    )


def test_stdin_is_read_as_it_arrives_too(cli, tmp_path) -> None:
    rows = "".join(f"j{i},{i},10,1\n" for i in range(3))
    r = cli(
        "sched",
        "simulate",
        "--trace",
        "-",
        "--nodes",
        "1",
        "--policy",
        "fifo",
        "-o",
        "json",
        stdin=HEADER + "\n" + rows,
    )
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["jobs"] == 3
    r = cli("sched", "simulate", "--trace", "-", "--nodes", "1", stdin=f"{HEADER}\na,0,1,1\n", tty=True)
    assert r.exit_code == 2
    assert "--trace - reads the trace from stdin, which is a terminal." in r.stderr


# -- a line of spaces is an empty line ----------------------------------------------------------------------------


def test_a_line_of_spaces_between_rows_is_skipped_as_an_empty_one() -> None:
    jobs = parse_trace([HEADER, "a,0,10,1", "   ", " \t ", "", "b,0,10,1", "  "], source="t.csv")
    assert [job.job_id for job in jobs] == ["a", "b"]
    with pytest.raises(UsageError) as refused:
        parse_trace([HEADER, "  ", "a,0,-1,1"], source="t.csv")
    assert refused.value.message.startswith("t.csv:3: ")  # physical line numbers, the spaces counted


def test_a_line_of_spaces_in_a_crlf_file(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(f"{HEADER}\r\na,0,10,1\r\n    \r\nb,0,10,1\r\n".encode())
    assert [job.job_id for job in read_trace(path, quiet=True)] == ["a", "b"]


def test_a_quoted_field_of_spaces_is_still_a_row() -> None:
    with pytest.raises(UsageError) as refused:
        parse_trace([HEADER, "a,0,10,1", '"  ",0,10,1'], source="t.csv")
    assert refused.value.message == "t.csv:3: job_id is empty"


# -- the hint for a job whose trace fixes its shape --------------------------------------------------------------


def _skipped_hint(cli, tmp_path, rows: str, *args: str) -> str:
    trace = tmp_path / "shaped.csv"
    trace.write_text(f"{SHAPED}\n{rows}B,0,100,1,,\n")
    r = cli("sched", "simulate", "--trace", str(trace), "--policy", "fifo", *args)
    assert r.exit_code == 0, r.stderr
    return next(line for line in r.stderr.splitlines() if line.startswith("hint: "))


def test_a_fixed_node_count_is_told_to_add_nodes_only(cli, tmp_path) -> None:
    hint = _skipped_hint(cli, tmp_path, "A,0,100,8,4,2\n", "--nodes", "2")
    assert hint == (
        "hint: job A asks for 4 nodes of 2 GPUs in the trace's num_nodes/gpus_per_node columns and the cluster has"
        " 2 nodes of 8 GPUs; raise --nodes to at least 4, or fix those columns."
    )


def test_too_wide_and_too_many_is_told_both(cli, tmp_path) -> None:
    hint = _skipped_hint(cli, tmp_path, "A,0,100,64,4,16\n", "--nodes", "2")
    assert "raise --nodes to at least 4 and --gpus-per-node to at least 16, or fix those columns." in hint


def test_too_wide_only_is_told_gpus_per_node_only(cli, tmp_path) -> None:
    hint = _skipped_hint(cli, tmp_path, "A,0,100,16,1,16\n", "--nodes", "4")
    assert hint.endswith(
        "the cluster has 4 nodes of 8 GPUs; raise --gpus-per-node to at least 16, or fix those columns."
    )


def test_a_shape_beyond_any_simulated_cluster_is_told_to_fix_the_columns(cli, tmp_path) -> None:
    hint = _skipped_hint(cli, tmp_path, "A,0,100,2000,1,2000\n", "--nodes", "4")
    assert hint == (
        "hint: job A asks for 1 node of 2,000 GPUs in the trace's num_nodes/gpus_per_node columns, more than a"
        " simulated cluster may have (at most 100,000 nodes of 1,024 GPUs); fix those columns."
    )


def test_sched_explain_gives_the_same_hint(cli, tmp_path) -> None:
    trace = tmp_path / "shaped.csv"
    trace.write_text(f"{SHAPED}\nA,0,100,8,4,2\nB,0,100,1,,\n")
    r = cli("sched", "explain", "--trace", str(trace), "--nodes", "2", "--at", "0")
    assert r.exit_code == 0, r.stderr
    assert "raise --nodes to at least 4, or fix those columns." in r.stderr
    assert "--gpus-per-node" not in r.stderr


def test_a_job_the_scheduler_shapes_may_still_take_either(cli, tmp_path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(f"{HEADER}\nbig,0,10,64\nok,0,10,1\n")
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "fifo")
    assert "add nodes (--nodes) or GPUs per node (--gpus-per-node)." in r.stderr


# -- --trace once -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["simulate"], ["explain", "--at", "0"]])
def test_a_repeated_trace_is_refused(cli, tmp_path, command) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(f"{HEADER}\na,0,10,1\n")
    b.write_text(f"{HEADER}\nb,0,10,1\n")
    r = cli("sched", *command, "--trace", str(a), "--trace", str(b), "--nodes", "2")
    assert r.exit_code == 2
    assert r.stderr == (
        "factoryctl: --trace is given twice, and a replay reads one trace.\n"
        "hint: give --trace once; to replay several traces together, join them into one file under one header.\n"
    )
    r = cli("sched", *command, f"--trace={a}", "--trace", str(b), "--trace", "-", "--nodes", "2")
    assert r.exit_code == 2
    assert r.stderr.startswith("factoryctl: --trace is given 3 times, and a replay reads one trace.\n")
    r = cli("sched", *command, "--trace", str(a), "--nodes", "2", "-o", "json")
    assert r.exit_code == 0, r.stderr


def test_one_trace_still_takes_any_file_name(cli, tmp_path) -> None:
    """Refusing a repeat keeps `--trace` a path: a file name that is not UTF-8 is still read, not refused as text."""
    path = tmp_path / os.fsdecode(b"t\xff.csv")
    path.write_text(f"{HEADER}\na,0,10,1\n")
    r = cli("sched", "simulate", "--trace", str(path), "--nodes", "1", "--policy", "fifo", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["jobs"] == 1
