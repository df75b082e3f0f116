"""The agent's stdout, written by a thread of its own, so a reader that stalls never stalls sampling.

A controller that stops reading (SIGSTOP, swapped out, a busy event loop) used to stop its nodes' streams: the pipe
holds about 64 KiB (some 15 samples of 8 GPUs), the stream's thread then blocked in its write, and the schedule
skipped every instant it missed, so those samples were never taken, and nobody counted them. Now a stream hands its
lines to an `Outbox` and goes on sampling on schedule; one writer thread writes them out as fast as they are read:

- A stream's samples wait in order, at most BACKLOG_S of them at the stream's interval and MAX_QUEUED_BYTES of
  queued samples over every stream (whichever is reached first). Past a bound the oldest queued samples are dropped,
  and the next sample of that stream that goes out counts them in `missed` (docs/agent-protocol.md, Sample timing).
- Replies go out before queued samples, in the order they were made: a `clock` answered behind minutes of backlog
  would measure the backlog, and a `set_power_limit` would seem to hang. A stream's samples keep their order and the
  stream reply still precedes its first sample (the stream starts after its reply is queued). `stop` gives up its
  stream's queued samples (`discard`), so none of them can follow its reply, as the protocol promises.
- Replies are few and small, but a client that sends requests without ever reading is held back as before: queuing
  one waits while REPLY_BACKLOG_BYTES of replies are already waiting.

Until `start` (an agent driven by its `handle` alone, in-process) every line is written at once by its caller, one at
a time, as before there was a queue.

Standard library only and Python 3.9 code: it ships in the agent zipapp.
"""

from __future__ import annotations

import collections
import math
import select
import threading
from typing import IO, Deque, Dict, Optional, Tuple

from factoryctl.agent.protocol import RequestId

#: How many seconds of a stream's samples wait for a reader, at the stream's interval: the controller stores a
#: backlog of up to 120 s read after it stalled (docs/controller.md, A node sending too fast).
BACKLOG_S = 120.0
#: At most this many bytes of queued samples over every stream, so a short interval cannot hold much memory (120 s of
#: 8-GPU samples, about 4 KB each, at intervals from about 0.12 s).
MAX_QUEUED_BYTES = 4 * 1024 * 1024
#: Queuing a reply waits while this many bytes of replies wait to be written.
REPLY_BACKLOG_BYTES = 1024 * 1024


def backlog_limit(interval: float) -> int:
    """How many samples of a stream at `interval` seconds may wait: BACKLOG_S of them."""
    return max(1, math.ceil(BACKLOG_S / interval))


class _Backlog:
    """One stream's queued lines, oldest first, each with its place in the order of all queued samples."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: Deque[Tuple[int, str]] = collections.deque()
        self.missed = 0  # dropped, not yet told in a sample that went out


class Outbox:
    """Lines to one text stream: replies first, then streams' samples, written by one thread once started."""

    def __init__(self, out: IO[str], max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        """`max_queued_bytes` bounds the queued samples of every stream together (MAX_QUEUED_BYTES)."""
        self.out = out
        self._max_queued_bytes = max_queued_bytes
        self._changed = threading.Condition()
        self._replies: Deque[str] = collections.deque()
        self._reply_bytes = 0
        self._backlogs: Dict[RequestId, _Backlog] = {}
        self._sample_bytes = 0
        self._queued_samples = 0
        self._sequence = 0
        self._started = False
        self._closing = False
        self._broken = False
        self._writer = threading.Thread(target=self._write_lines, name="agent-output", daemon=True)

    def reader_gone(self) -> bool:
        """Whether nobody reads these lines any more (the agent's client killed, its SSH session gone).

        As poll says of a pipe or socket whose reading end is closed; never for a stream with no descriptor.
        """
        try:
            poller = select.poll()
            poller.register(self.out.fileno(), select.POLLOUT)
            return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
        except (AttributeError, OSError, ValueError):  # no descriptor (a test's StringIO), or closed meanwhile
            return False

    def start(self) -> None:
        """Queue lines from now on, written by a thread of the outbox's own."""
        with self._changed:
            self._started = True
            self._writer.start()

    @property
    def waiting(self) -> Tuple[int, int]:
        """How many replies and samples wait to be written (not counting the one being written)."""
        with self._changed:
            return len(self._replies), self._queued_samples

    def reply(self, line: str) -> None:
        """Queue a reply line; BrokenPipeError once the output cannot be written."""
        with self._changed:
            if not self._started:
                self._write_now(line)
                return
            while self._reply_bytes > REPLY_BACKLOG_BYTES and not self._broken:
                self._changed.wait()
            if self._broken:
                raise BrokenPipeError("the agent's output is closed")
            self._replies.append(line)
            self._reply_bytes += len(line)
            self._changed.notify_all()

    def sample(self, stream_id: RequestId, line: str, limit: int, unless: threading.Event) -> None:
        """Queue a sample line of stream `stream_id`, unless `unless` is set (the stream was stopped).

        At most `limit` of the stream's samples wait (backlog_limit), and MAX_QUEUED_BYTES of every stream's: past a
        bound the oldest are dropped and counted. BrokenPipeError once the output cannot be written.
        """
        with self._changed:
            if self._broken:
                raise BrokenPipeError("the agent's output is closed")
            if unless.is_set():
                return
            if not self._started:
                self._write_now(line)
                return
            backlog = self._backlogs.setdefault(stream_id, _Backlog(limit))
            self._sequence += 1
            backlog.lines.append((self._sequence, line))
            self._sample_bytes += len(line)
            self._queued_samples += 1
            while len(backlog.lines) > backlog.limit:
                self._drop_oldest(backlog)
            while self._sample_bytes > self._max_queued_bytes and self._queued_samples > 1:
                self._drop_oldest(self._oldest_backlog())
            self._changed.notify_all()

    def discard(self, stream_id: RequestId) -> int:
        """Give up the stopped stream's queued samples; how many of its samples never went out (dropped ones too)."""
        with self._changed:
            backlog = self._backlogs.pop(stream_id, None)
            if backlog is None:
                return 0
            self._queued_samples -= len(backlog.lines)
            self._sample_bytes -= sum(len(line) for _, line in backlog.lines)
            return backlog.missed + len(backlog.lines)

    def close(self) -> None:
        """Write what is queued, then end the writer (waiting for it: the caller may close `out` next)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._started:
            self._writer.join()

    def _write_now(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _drop_oldest(self, backlog: _Backlog) -> None:
        _, line = backlog.lines.popleft()
        self._sample_bytes -= len(line)
        self._queued_samples -= 1
        backlog.missed += 1

    def _oldest_backlog(self) -> _Backlog:
        """The backlog whose first line was queued first (one with lines: the caller knows some are queued)."""
        return min((b for b in self._backlogs.values() if b.lines), key=lambda b: b.lines[0][0])

    def _next_line(self) -> Optional[str]:
        """The line to write next, taken off its queue: a reply, else the oldest sample; None when closed and empty."""
        with self._changed:
            while not self._replies and not self._queued_samples and not self._closing:
                self._changed.wait()
            if self._replies:
                line = self._replies.popleft()
                self._reply_bytes -= len(line)
                self._changed.notify_all()  # a reply waiting for room
                return line
            if not self._queued_samples:
                return None
            backlog = self._oldest_backlog()
            _, line = backlog.lines.popleft()
            self._sample_bytes -= len(line)
            self._queued_samples -= 1
            if backlog.missed:  # a JSON object: its last key added before its closing brace
                line = f'{line[:-1]},"missed":{backlog.missed}}}'
                backlog.missed = 0
            return line

    def _write_lines(self) -> None:
        while True:
            line = self._next_line()
            if line is None:
                return
            try:
                self._write_now(line)
            except (OSError, ValueError):  # the reader is gone (a broken pipe, a closed stream)
                with self._changed:
                    self._broken = True
                    self._replies.clear()
                    self._backlogs.clear()
                    self._queued_samples = self._sample_bytes = self._reply_bytes = 0
                    self._changed.notify_all()
                return
