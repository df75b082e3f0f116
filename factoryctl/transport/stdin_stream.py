"""Standard input streamed to many commands at once (`factoryctl exec`), the way ssh streams it to one.

A reader thread reads the source in chunks while the commands run; every chunk goes to every node's `Feed`; each
node's command gets EOF when the source ends. Nothing ever waits for the source: a command that exits is done, and
once every node's command is done the reader is told to stop (a pipe that never closes holds nobody up).

The source is read with poll + os.read on its file descriptor, so a descriptor a parent left O_NONBLOCK (some CI
runners do) loses nothing and raises nothing: "no data yet" is just waited for. Its flags are never changed (the
open file description is shared with the parent).

Memory is bounded, not proportional to the input or to the node count: chunks live once in a shared log and every
feed keeps its own position in it. The reader stops reading while the slowest running node is `window` bytes behind
(back-pressure: a slow node slows the stream, it does not grow memory). Nodes still waiting for a fan-out slot need
the input from its first byte, so the log is kept from the start while any node waits, up to `replay` bytes; a
waiting node that would need more fails with an error instead of running with part of its input.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
from typing import TypeAlias

from factoryctl.errors import NodeError
from factoryctl.transport.polling import readable

#: Bytes read from the source at once (and the most a feed hands out per call).
CHUNK = 1 << 16
#: How far the slowest running node may fall behind before reading pauses.
WINDOW = 8 << 20
#: The most input kept from the start for nodes still waiting for a fan-out slot.
REPLAY = 64 << 20
#: A command's standard input: all of it as bytes, a `Feed` streamed while it runs, or None (EOF at once).
Stdin: TypeAlias = "bytes | Feed | None"
#: How often a waiting reader looks again at who is left (a stop request wakes it at once).
_POLL_S = 0.2
#: How long `stop` waits for the reader thread to leave.
_STOP_WAIT_S = 1.0


class StdinBroadcast:
    """One input source fanned out to many feeds (one per node); see the module docstring."""

    def __init__(self, fd: int | None = None, window: int = WINDOW, replay: int = REPLAY) -> None:
        self.window = window
        self.replay = replay
        self._cond = threading.Condition()
        # The log: _chunks[_first:] hold the stream from _base on; _starts[i] is the stream offset of _chunks[i]
        # (found by bisect). Small reads are merged into the last chunk until it is CHUNK long, so the chunk count
        # stays proportional to the bytes held, never to the number of reads.
        self._chunks: list[bytes | bytearray] = []
        self._starts: list[int] = []
        self._first = 0
        self._base = 0  # stream offset of _chunks[_first]
        self._head = 0  # stream offset just past the last chunk
        self._ended = False
        self._stopped = False
        self._waiting: set[Feed] = set()  # no fan-out slot yet (they need the log from its start)
        self._running: set[Feed] = set()  # at most --fanout of them: the only ones scanned per step
        #: The most bytes held at once (tests check the bound).
        self.peak = 0
        self._fd = fd
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None  # a pipe that wakes the reader out of its select at once
        #: Why the source could not be read to its end (one sentence), if it could not: the commands got EOF there.
        self.error: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> StdinBroadcast:
        """A source that is already complete (in-memory stdin, or a caller's bytes)."""
        broadcast = cls(None, window=max(len(data), 1), replay=max(len(data), 1))
        if data:
            broadcast._chunks.append(bytes(data))
            broadcast._starts.append(0)
            broadcast._head = broadcast.peak = len(data)
        broadcast._ended = True
        return broadcast

    def feed(self, node: str) -> Feed:
        """Register a node (waiting for its slot until `Feed.start`); call for every node before `start`."""
        with self._cond:
            feed = Feed(self, node)
            self._waiting.add(feed)
            return feed

    def start(self) -> None:
        """Start reading the source, once (no-op for complete sources)."""
        with self._cond:
            if self._fd is None or self._thread is not None or self._ended or self._stopped:
                return
            self._wake = os.pipe()
            os.set_blocking(self._wake[1], False)
            self._thread = threading.Thread(target=self._read_loop, daemon=True, name="exec-stdin")
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (every command is done): the reader thread is woken, and waited for (a second at most)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._wake_feeds()
            thread, wake = self._thread, self._wake
        if wake is None or thread is None:
            return
        with contextlib.suppress(OSError):
            os.write(wake[1], b"x")
        thread.join(_STOP_WAIT_S)
        if not thread.is_alive():  # else it still selects on the pipe: leave it open (a daemon thread, at exit)
            with self._cond:
                self._wake = None
            for end in wake:
                os.close(end)

    # -- reader side ---------------------------------------------------------------------------------------------

    def _must_pause(self) -> bool:
        """The slowest running node is a window behind, or nodes wait for a slot and none runs (between turns).

        Between one node's end and the next one's start nobody takes input: reading on then would only fill the
        replay log the waiting nodes hold from its start, and refuse them for input nobody asked for.
        """
        if not self._running:
            return bool(self._waiting)
        return self._head - min(f.pos for f in self._running) >= self.window

    def _nobody_left(self) -> bool:
        return not self._waiting and not self._running

    def _read_loop(self) -> None:
        fd, wake = self._fd, self._wake
        assert fd is not None
        assert wake is not None
        while True:
            with self._cond:
                while not self._stopped and not self._nobody_left() and self._must_pause():
                    self._cond.wait(_POLL_S)
                if self._stopped or self._nobody_left():
                    return
            try:
                ready = readable([fd, wake[0]], _POLL_S)
                if fd not in ready:
                    continue  # woken by stop, or a poll to look again at who is left
                data = os.read(fd, CHUNK)
            except (BlockingIOError, InterruptedError):
                continue  # O_NONBLOCK and nothing there after all: wait again
            except OSError as exc:  # unreadable from here on (EIO: a terminal hung up): the end, said out loud
                self.error = f"standard input could not be read ({exc.strerror or exc}), so the commands got EOF there."
                data = b""
            except ValueError:
                data = b""
            self._append(data)
            if not data:
                return

    def _append(self, data: bytes) -> None:
        with self._cond:
            if not data:
                self._ended = True
            else:
                last = self._chunks[-1] if len(self._chunks) > self._first else None
                if isinstance(last, bytearray) and len(last) < CHUNK:
                    last += data  # merged: feeds address the stream by offset, so growing the tail moves nothing
                else:
                    self._chunks.append(bytearray(data) if len(data) < CHUNK else data)
                    self._starts.append(self._head)
                self._head += len(data)
                if self._head > self.replay:
                    for feed in self._waiting:
                        feed.state = "refused"
                    self._waiting.clear()
                self._trim()
            self._cond.notify_all()
            self._wake_feeds()

    def _wake_feeds(self) -> None:
        """Tell the running feeds' select loops (`Feed.wakeup_fd`) that there is news: more input, or its end."""
        for feed in self._running:
            feed._signal()

    def _trim(self) -> None:
        """Drop chunks every live feed is past (all of them are kept while a node still waits)."""
        low = 0 if self._waiting else min((f.pos for f in self._running), default=self._head)
        chunks, first = self._chunks, self._first
        while first < len(chunks) and self._base + len(chunks[first]) <= low:
            self._base += len(chunks[first])
            chunks[first] = b""  # released now; the list itself is compacted once half of it is spent
            first += 1
        if first and first * 2 >= len(chunks):
            del chunks[:first]
            del self._starts[:first]
            first = 0
        self._first = first
        self.peak = max(self.peak, self._head - self._base)

    # -- feed side (under the lock) ------------------------------------------------------------------------------

    def _peek(self, pos: int, limit: int) -> bytes:
        """Up to `limit` bytes from stream offset `pos` on, across chunks."""
        if pos >= self._head or pos < self._base:
            return b""
        index = bisect.bisect_right(self._starts, pos, self._first) - 1
        parts: list[bytes] = []
        taken = 0
        while taken < limit and index < len(self._chunks):
            chunk = self._chunks[index]
            start = pos + taken - self._starts[index]
            part = bytes(chunk[start : start + limit - taken])
            parts.append(part)
            taken += len(part)
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _holds_oldest(self, pos: int) -> bool:
        """`pos` is inside the oldest chunk still kept (a feed there may be what keeps it)."""
        return self._first < len(self._chunks) and pos - self._base < len(self._chunks[self._first])


class Feed:
    """One node's view of the input: what it has not taken yet, and whether the input ended."""

    def __init__(self, broadcast: StdinBroadcast, node: str) -> None:
        self._b = broadcast
        self.node = node
        self.pos = 0
        #: waiting (no fan-out slot yet) -> running -> done; refused if the input outgrew the replay bound first.
        self.state = "waiting"
        self._wakeup: tuple[int, int] | None = None
        self._signalled = False

    def wakeup_fd(self) -> int:
        """A descriptor select() finds readable when there is news for this feed: more input, its end, its close.

        For transports that wait in select rather than in `wait`: `clear_wakeup` before looking at the feed, and
        `release_wakeup` once done with it.
        """
        with self._b._cond:
            if self._wakeup is None:
                self._wakeup = os.pipe()
                for end in self._wakeup:
                    os.set_blocking(end, False)
                self._signalled = False
                self._signal()  # look at the feed at least once
            return self._wakeup[0]

    def clear_wakeup(self) -> None:
        """Take the news: the descriptor is not readable until there is more."""
        with self._b._cond:
            if self._wakeup is not None and self._signalled:
                with contextlib.suppress(OSError):
                    while os.read(self._wakeup[0], 4096):
                        pass
                self._signalled = False

    def release_wakeup(self) -> None:
        """Close the descriptor (the transport no longer selects on it)."""
        with self._b._cond:
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            for end in wakeup:
                os.close(end)

    def _signal(self) -> None:
        """(under the lock) Make the wake-up descriptor readable, once until it is cleared."""
        if self._wakeup is not None and not self._signalled:
            with contextlib.suppress(OSError):
                os.write(self._wakeup[1], b"\0")
            self._signalled = True

    def start(self) -> None:
        """The node got its slot and is about to run; NodeError if its input could not be kept for it."""
        with self._b._cond:
            if self.state == "refused":
                self.state = "done"
                raise NodeError(
                    self.node,
                    "agent",
                    f"standard input passed {self._b.replay >> 20} MiB before this node's turn came, and is not kept "
                    "past that for nodes waiting for a --fanout slot.",
                    "raise --fanout to the number of nodes, or copy big files with scp or rsync and pass their path.",
                )
            if self.state == "waiting":
                self.state = "running"
                self._b._waiting.discard(self)
                self._b._running.add(self)
                self._b._cond.notify_all()
        self._b.start()  # reading begins with the first node's turn

    def peek(self, limit: int = CHUNK) -> bytes:
        """Up to `limit` bytes available now (b"" if none yet, none left, or the feed is closed); never blocks."""
        with self._b._cond:
            return self._b._peek(self.pos, limit) if self.state == "running" else b""

    def advance(self, count: int) -> None:
        """`count` bytes of what `peek` gave were delivered."""
        with self._b._cond:
            slowest = self._b._holds_oldest(self.pos)
            self.pos += count
            if slowest:  # it may have held the oldest chunk: drop what nobody needs, wake a paused reader
                self._b._trim()
                self._b._cond.notify_all()

    @property
    def closed(self) -> bool:
        """The feed was closed: the node takes no more input."""
        with self._b._cond:
            return self.state == "done"

    @property
    def ended(self) -> bool:
        """Everything was taken and the input ended (time to send EOF), or the feed was closed."""
        with self._b._cond:
            return self.state == "done" or (self._b._ended and self.pos >= self._b._head)

    def wait(self, timeout: float) -> None:
        """Block until more input, its end, or `timeout`."""
        with self._b._cond:
            if self.pos >= self._b._head and not self._b._ended and not self._b._stopped:
                self._b._cond.wait(timeout)

    def close(self) -> None:
        """The node takes no more input (its command exited, closed its stdin, or failed); it holds nobody back."""
        with self._b._cond:
            if self.state != "done":
                self.state = "done"
                self._b._waiting.discard(self)
                self._b._running.discard(self)
                self._b._trim()
                self._b._cond.notify_all()
                self._signal()


def fixed_feed(data: bytes, node: str = "") -> Feed:
    """A feed of exactly `data`, then EOF (callers that have the whole input in hand)."""
    feed = StdinBroadcast.from_bytes(data).feed(node)
    feed.start()
    return feed


def as_feed(stdin: Stdin) -> Feed | None:
    """The feed for a command's `stdin` argument; None when there is nothing to send (EOF at once)."""
    if isinstance(stdin, bytes):
        return fixed_feed(stdin) if stdin else None
    return stdin
