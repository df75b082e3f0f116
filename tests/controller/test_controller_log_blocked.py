"""A stderr nobody reads stops neither the storing of samples nor a SIGTERM.

The log went through a plain `StreamHandler`: with stderr a full pipe (journald stalled, `controller run 2>&1 | tee`
or `| less` whose reader stopped), every thread that logged blocked in `write` under the handler's lock. The store
writer logs a tick's state changes before it stores the tick, so samples stopped (`controller status`: "has stored
no sample since ..."), and the main loop's `received SIGTERM: stopping` blocked too, so SIGTERM did nothing (systemd
ends that with SIGKILL). Now lines go through a bounded queue written by a thread of its own (controller_log.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from store_rows import NODE_SAMPLES_SQL, count_while_created, event_kinds
from waiting import wait_for

from factoryctl.controller_log import QueuedStderr

pytestmark = pytest.mark.slow


@pytest.fixture
def full_pipe() -> Iterator[tuple[int, int]]:
    """A pipe (read end, write end) whose buffer is full: its reader never reads while the test runs."""
    read, write = os.pipe()
    flags = fcntl.fcntl(write, fcntl.F_GETFL)
    fcntl.fcntl(write, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write, b"x" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(write, fcntl.F_SETFL, flags)  # the controller's own writes block, as on any full pipe
    yield read, write
    for fd in (read, write):
        os.close(fd)


def drain(fd: int) -> bytes:
    """What the pipe holds now, without waiting for more."""
    os.set_blocking(fd, False)
    got = b""
    try:
        while chunk := os.read(fd, 65536):
            got += chunk
    except BlockingIOError:
        pass
    return got


def test_a_stderr_never_read_blocks_neither_samples_nor_sigterm(tmp_path: Path, full_pipe: tuple[int, int]) -> None:
    read, write = full_pipe
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local, sim: h100-sxm, gpus: 1}}}}\n"
        "controller: {interval_s: 0.5}\n"
    )
    db = tmp_path / "state" / "factory.db"
    argv = [*CLI_ARGV, "--config", str(config), "controller", "run", "--log-level", "debug"]
    proc = subprocess.Popen(argv, stdout=write, stderr=write, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: count_while_created(db, NODE_SAMPLES_SQL, "n1") >= 6, what="samples stored")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # it blocked in `write` for as long as the pipe stayed full
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert event_kinds(db)[-1] == "controller_stop"
    assert set(drain(read)) == {ord("x")}  # what filled the pipe; nothing of the controller's got in


def test_lines_dropped_while_stderr_is_full_are_counted_once_it_drains(full_pipe: tuple[int, int]) -> None:
    read, write = full_pipe
    with os.fdopen(os.dup(write), "w") as stream:
        handler = QueuedStderr(stream, capacity=3)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log = logging.Logger("blocked")
        log.addHandler(handler)
        for number in range(20):  # none of these waits for the pipe
            log.warning("line %d", number)
        handler.flush()  # gives up: the pipe is still full
        got = drain(read).lstrip(b"x")
        log.warning("after")
        os.set_blocking(read, True)
        while not got.endswith(b"after\n"):
            got += os.read(read, 65536)
        handler.close()  # its thread ends
        lines = got.decode().splitlines()
    written = len(lines) - 2  # the first (once drained), then those queued meanwhile (3; 4 when the thread took the
    assert written in (3, 4)  # first before the fourth was logged); the rest were dropped
    assert lines[:written] == [f"WARNING line {n}" for n in range(written)]
    assert lines[written:] == [
        f"WARNING {20 - written} log lines dropped: stderr was not read (up to 3 lines are held)",
        "WARNING after",
    ]
