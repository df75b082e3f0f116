"""A reader that stops reading loses no sample: the agent samples on schedule and queues what cannot go out yet.

With a controller stopped (SIGSTOP) for 30 s, each agent filled its ~64 KiB pipe in some 15 samples of 8 GPUs, blocked
in the write, and skipped every sampling instant it missed: about 13 s of samples per node were never taken, and the
controller counted none of them as dropped. Here a real agent's stdout is left unread for seconds, far past what the
pipe holds, and then every sampling instant must be there, replies must not wait behind the backlog, and a stop must
leave no sample after its reply. The queue's bounds (drop the oldest, count them in `missed`) are checked on the
agent's `Outbox` itself over a real pipe, as 120 s of stalling would be too slow for a test.

The streams run at 0.2 s: at 0.1 s, an agent a loaded machine woke up a tenth of a second late fell behind and
skipped that instant, as documented (docs/agent-protocol.md, Sample timing), which read as a lost one (about one
instant in 400 with three CPU hogs on two cores). So that seconds of samples still overflow it, the agent's stdout
pipe is cut to 16 KiB.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from factoryctl.agent.outbox import Outbox, backlog_limit

#: The agent's stdout pipe, cut from the default 64 KiB: the stall must leave far more samples than this unread.
PIPE_BYTES = 16 * 1024
#: The streams' interval: a loaded machine woke the agent up to some 0.16 s late; a tenth of a second skipped instants.
INTERVAL = 0.2


class RawAgent:
    """A real agent whose stdout is read only when asked, line by line, without a read-ahead.

    16 simulated GPUs: a sample of some 7.8 KB takes two of the pipe's 4 pages, so it holds only 2.
    """

    def __init__(self, zipapp: Path, state: Path) -> None:
        argv = [sys.executable, str(zipapp), "--node", "n1", "--sim", "h100-sxm", "--gpus", "16"]
        argv += ["--state-dir", str(state)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.proc.stdout is not None
        fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # before the agent writes its hello
        self._fd = self.proc.stdout.fileno()
        self._pending = b""

    def send(self, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())

    def read(self, timeout: float = 10.0) -> dict[str, Any]:
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            assert ready, "the agent did not write in time"
            chunk = os.read(self._fd, 65536)
            assert chunk, "the agent exited"
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return {"line_bytes": len(line) + 1, **json.loads(line)}

    def close(self) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.close()  # what is left unread must not hold its exit
        return self.proc.wait(timeout=10)


def _start(zipapp: Path, tmp_path: Path) -> tuple[RawAgent, dict[str, Any]]:
    """An agent streaming at INTERVAL (id 1), its reply and first sample read; returns it and that sample."""
    agent = RawAgent(zipapp, tmp_path / "state")
    assert agent.read()["type"] == "hello"
    agent.send(id=1, op="stream", interval_s=INTERVAL)
    assert agent.read()["ok"] is True
    return agent, agent.read()


def _grid_instants(samples: list[dict[str, Any]]) -> list[int]:
    """The wall-clock grid instant (a multiple of INTERVAL) each sample was taken at, after the first (taken at once).

    A sample is stamped once read, some ms after its instant, and the schedule may sit up to 10 ms off the wall-clock
    grid (factoryctl.agent.schedule's ALIGN_TOLERANCE_S): a stamp from a tenth of an interval (20 ms) before an
    instant to nine tenths after it (a loaded machine read one 156 ms late, the last one given: no successor).
    Later still it would read as the next instant (310 late as 311, beside 311 itself); stamps are never earlier, so
    each sample's instant is at most the one before its successor's: read backwards, a late one is put back where it
    belongs, while a missing instant stays a gap.
    """
    instants = [math.floor(s["result"]["time"] / INTERVAL + 0.1) for s in samples[1:]]
    for i in range(len(instants) - 2, -1, -1):
        instants[i] = min(instants[i], instants[i + 1] - 1)
    return instants


def _contiguous(instants: list[int]) -> bool:
    return instants == list(range(instants[0], instants[0] + len(instants)))


def test_no_sampling_instant_is_lost_while_nobody_reads_and_replies_do_not_wait(zipapp: Path, tmp_path: Path) -> None:
    agent, first = _start(zipapp, tmp_path)
    time.sleep(3.0)
    agent.send(id=2, op="clock")  # while a dozen samples wait behind a full pipe
    time.sleep(1.0)
    read_from = time.time()
    lines = [first]
    while not (lines[-1].get("type") == "sample" and lines[-1]["result"]["time"] > read_from + INTERVAL):
        lines.append(agent.read())  # the backlog, until a sample taken after reading resumed
    agent.send(id=3, op="stop")
    lines.append(agent.read())
    while lines[-1].get("id") != 3:
        lines.append(agent.read())
    assert agent.close() == 0

    samples = [line for line in lines if line.get("type") == "sample"]
    instants = _grid_instants(samples)
    assert _contiguous(instants), f"sampling instants are missing: {instants}"
    assert sum(s["line_bytes"] for s in samples if s["result"]["time"] < read_from) > 4 * PIPE_BYTES
    assert not any("missed" in s for s in samples)
    clock = next(i for i, line in enumerate(lines) if line.get("id") == 2)
    older = [
        s for s in lines[clock:] if s.get("type") == "sample" and s["result"]["time"] < lines[clock]["result"]["time"]
    ]
    assert len(older) > 5, "the clock's reply waited behind the queued samples"
    assert lines[-1] == {"line_bytes": lines[-1]["line_bytes"], "id": 3, "ok": True, "result": {"stopped": True}}


def test_a_stop_gives_up_the_queued_samples_and_none_follows_its_reply(zipapp: Path, tmp_path: Path) -> None:
    agent, first = _start(zipapp, tmp_path)
    time.sleep(2.5)  # some 12 samples, 95 KB: far more than the pipe holds
    agent.send(id=2, op="stop")
    time.sleep(0.5)  # handled while nothing is read, not raced by a reader draining the queue
    lines = [agent.read()]
    while lines[-1].get("id") != 2:
        lines.append(agent.read())
    agent.send(id=3, op="clock")
    assert agent.read()["id"] == 3  # nothing of the stream came between
    assert agent.close() == 0
    stop = lines[-1]
    assert (stop["ok"], stop["result"]["stopped"]) == (True, True)
    delivered = [first, *lines[:-1]]
    assert all(line.get("type") == "sample" for line in delivered)
    assert _contiguous(_grid_instants(delivered))
    assert stop["result"].get("missed", 0) > 5, (len(delivered), stop)  # the samples still queued, counted


def _blocked_outbox(max_queued_bytes: int = 1 << 20) -> tuple[Outbox, int, int]:
    """A started outbox whose writer holds a first reply, blocked on a full pipe: what follows waits in its queue.

    Returns it, the pipe's reading end and how many filler bytes come before that reply.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    filler = 0
    for size in (4096, 1):
        with contextlib.suppress(BlockingIOError):
            while True:
                filler += os.write(write_fd, b"x" * size)
    os.set_blocking(write_fd, True)
    outbox = Outbox(open(write_fd, "w"), max_queued_bytes)  # noqa: SIM115 - closed by `_lines`
    outbox.start()
    outbox.reply('{"id":0,"ok":true,"result":{}}')
    deadline = time.monotonic() + 10
    while outbox.waiting != (0, 0):  # until the writer has taken it
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return outbox, read_fd, filler


def _lines(outbox: Outbox, read_fd: int, filler: int) -> list[dict[str, Any]]:
    """Every line written after the filler and the first reply: the pipe read while the outbox is closed."""

    def close() -> None:
        outbox.close()
        outbox.out.close()

    closing = threading.Thread(target=close)
    closing.start()
    with open(read_fd, "rb") as pipe:
        data = pipe.read()
    closing.join()
    return [json.loads(line) for line in data[filler:].splitlines()[1:]]


def _sample(number: int, stream: str = "s") -> str:
    return json.dumps({"id": stream, "type": "sample", "result": {"n": number}}, separators=(",", ":"))


def test_past_its_bound_a_stream_drops_its_oldest_samples_and_the_next_one_out_counts_them() -> None:
    outbox, read_fd, filler = _blocked_outbox()
    running = threading.Event()
    for number in range(10):
        outbox.sample("s", _sample(number), 4, running)
    outbox.reply('{"id":9,"ok":true,"result":{}}')
    lines = _lines(outbox, read_fd, filler)
    assert lines[0]["id"] == 9  # the reply first
    assert [(line["result"]["n"], line.get("missed")) for line in lines[1:]] == [
        (6, 6),
        (7, None),
        (8, None),
        (9, None),
    ]
    assert backlog_limit(1.0) == 120
    assert backlog_limit(0.05) == 2400


def test_past_the_byte_bound_the_oldest_sample_of_any_stream_is_dropped_and_a_stop_counts_what_it_gave_up() -> None:
    outbox, read_fd, filler = _blocked_outbox(max_queued_bytes=3 * len(_sample(0)))
    running = threading.Event()
    for number in range(3):
        outbox.sample("a", _sample(number, "a"), 100, running)
        outbox.sample("b", _sample(number, "b"), 100, running)
    assert outbox.discard("b") == 3  # 1 dropped (b0), 2 queued
    lines = _lines(outbox, read_fd, filler)
    assert [(line["id"], line["result"]["n"], line.get("missed")) for line in lines] == [("a", 2, 2)]
