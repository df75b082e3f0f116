"""A reader that leaves while a large output is being written (`| head -c 10`) ends the command with 141, quietly.

Under PYTHONUNBUFFERED=1 (`python -u`, usual in containers and service units) stdout's binary layer is the raw file,
whose write takes what the pipe holds when its reader leaves and returns that count without an error; the text
layer ignored the count and dropped the rest: `sched explain -o json | head -c 10` (98 KB), `sched simulate
--schedule-out -` and a gathered `exec` ended 0 with their output cut. Here stdout is such an unbuffered stream
into a pipe whose reader closes it, unread, once it takes no more: the command is then blocked in its one large
write (every output here is larger than a pipe holds, and what comes before it is a line at most), so the short
write happens every time.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.cli.app import run


def _takes_more(write_fd: int) -> bool:
    """Whether the pipe whose write end is `write_fd` has room (a free page) for more."""
    return bool(select.select([], [write_fd], [], 0)[1])


@contextlib.contextmanager
def stdout_cut_once_full() -> Iterator[io.StringIO]:
    """stdout into a pipe whose reader closes it, unread, once it takes no more; yields the stderr capture."""
    read_fd, write_fd = os.pipe()
    done = threading.Event()

    def close_when_full() -> None:
        while _takes_more(write_fd) and not done.wait(0.01):
            pass
        os.close(read_fd)

    reader = threading.Thread(target=close_when_full, daemon=True)
    reader.start()
    old = sys.stdout, sys.stderr
    err = io.StringIO()
    unbuffered = io.FileIO(write_fd, "w", closefd=False)  # as Python sets stdout up under PYTHONUNBUFFERED=1
    sys.stdout = io.TextIOWrapper(unbuffered, encoding="utf-8", write_through=True)
    sys.stderr = err
    try:
        yield err
    finally:
        sys.stdout, sys.stderr = old
        done.set()
        reader.join(30)
        os.close(write_fd)  # the wrapper is left unflushed and unclosed: what it holds can go nowhere


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """3,000 jobs of 8 GPUs submitted at once: on one node 2,999 wait (a 890 KB explanation, a 105 KB schedule)."""
    path = tmp_path / "trace.csv"
    path.write_text("job_id,submit_time_s,duration_s,num_gpus\n" + "".join(f"j{i},0,1000,8\n" for i in range(3000)))
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["sched", "explain", "--nodes", "1", "--at", "10", "-o", "json"],
        ["sched", "simulate", "--nodes", "1", "--policy", "fifo", "--schedule-out", "-"],
    ],
    ids=["explain-json", "simulate-schedule-out-dash"],
)
def test_a_large_replay_output_cut_by_its_reader_is_141(trace: Path, command: list[str]) -> None:
    with stdout_cut_once_full() as err:
        status = run(["-q", *command, "--trace", str(trace)])
    assert status == 141
    assert "factoryctl" not in err.getvalue()  # nothing said (`--schedule-out -` moves the table to stderr)


def test_a_large_gathered_exec_output_cut_by_its_reader_is_141(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  ws: {{transport: local}}\n")
    with stdout_cut_once_full() as err:
        status = run(["--config", str(config), "exec", "ws", "-n", "--", "seq", "20000"])
    assert (status, err.getvalue()) == (141, "")
