"""The stdin broadcast behind `exec`: every byte to every feed, bounded memory, never a wait on the source."""

from __future__ import annotations

import os
import threading
import time

import pytest
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.transport import stdin_stream
from factoryctl.transport.stdin_stream import CHUNK, Feed, StdinBroadcast, fixed_feed

MIB = 1 << 20


def drain(feed: Feed, out: bytearray, pause: float = 0.0) -> None:
    """A consumer: takes what is there (pausing between takes when slow) until the input ended."""
    while not feed.ended:
        data = feed.peek(4096 if pause else CHUNK)
        if data:
            out += data
            feed.advance(len(data))
            time.sleep(pause)
        else:
            feed.wait(0.1)
    feed.close()


def writer(fd: int, data: bytes) -> threading.Thread:
    def run() -> None:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_slow_and_fast_feeds_get_every_byte_with_bounded_memory():
    read_end, write_end = os.pipe()
    data = os.urandom(4 * MIB)
    window = 256 << 10
    broadcast = StdinBroadcast(read_end, window=window)
    fast, slow = broadcast.feed("fast"), broadcast.feed("slow")
    got_fast, got_slow = bytearray(), bytearray()
    fast.start()
    slow.start()
    source = writer(write_end, data)
    threads = [
        threading.Thread(target=drain, args=(fast, got_fast)),
        threading.Thread(target=drain, args=(slow, got_slow, 0.0005)),
    ]
    for thread in threads:
        thread.start()
    for thread in [*threads, source]:
        thread.join(120)
    os.close(read_end)
    assert bytes(got_fast) == data
    assert bytes(got_slow) == data
    assert broadcast.peak <= window + CHUNK  # back-pressure: the slow feed held the reader, not the memory


def test_a_non_blocking_source_loses_nothing():
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    data = os.urandom(MIB)
    broadcast = StdinBroadcast(read_end)
    feed = broadcast.feed("n")
    feed.start()

    def trickle() -> None:
        for i in range(0, len(data), 50_000):
            time.sleep(0.002)
            os.write(write_end, data[i : i + 50_000])
        os.close(write_end)

    source = threading.Thread(target=trickle)
    source.start()
    got = bytearray()
    drain(feed, got)
    source.join()
    os.close(read_end)
    assert bytes(got) == data


def test_reading_stops_when_every_feed_is_done():
    """A source that never ends (an open, silent pipe) holds nobody: the reader leaves once nobody is fed."""
    read_end, write_end = os.pipe()
    broadcast = StdinBroadcast(read_end)
    feed = broadcast.feed("n")
    feed.start()
    assert broadcast._thread is not None
    feed.close()
    broadcast._thread.join(5)
    assert not broadcast._thread.is_alive()
    os.close(read_end)
    os.close(write_end)


def test_nodes_waiting_for_a_slot_get_the_input_from_its_start_up_to_the_replay_bound():
    read_end, write_end = os.pipe()
    broadcast = StdinBroadcast(read_end, window=MIB, replay=2 * MIB)
    first, later, too_late = broadcast.feed("n1"), broadcast.feed("n2"), broadcast.feed("n3")
    first.start()
    got_first = bytearray()
    consumer = threading.Thread(target=drain, args=(first, got_first))
    consumer.start()
    os.write(write_end, b"a" * MIB)
    deadline = time.monotonic() + 10
    while len(got_first) < MIB and time.monotonic() < deadline:
        time.sleep(0.01)
    later.start()  # its turn came before the input passed the replay bound: it gets all of it
    got_later = bytearray()
    second = threading.Thread(target=drain, args=(later, got_later))
    second.start()
    source = writer(write_end, b"b" * (2 * MIB))
    for thread in (consumer, second, source):
        thread.join(60)
    os.close(read_end)
    assert bytes(got_first) == bytes(got_later) == b"a" * MIB + b"b" * (2 * MIB)
    with pytest.raises(NodeError) as caught:
        too_late.start()
    assert "--fanout" in (caught.value.hint or "")


def test_fixed_feed():
    feed = fixed_feed(b"abc")
    assert (feed.peek(2), feed.ended) == (b"ab", False)
    feed.advance(3)
    assert feed.ended


class _ReaderPauses(threading.Condition):
    """A broadcast's condition that counts how often its reader thread goes (back) to waiting on it: paused."""

    def __init__(self, broadcast: StdinBroadcast) -> None:
        super().__init__()
        self._broadcast = broadcast
        self.count = 0

    def wait(self, timeout: float | None = None) -> bool:
        if threading.current_thread() is self._broadcast._thread:
            self.count += 1  # under the lock, right after the reader looked at who runs and chose to pause
        return super().wait(timeout)


def test_nothing_is_read_between_turns_while_nodes_wait_for_a_slot():
    """Between one node's end and the next one's start nobody takes input: reading then would only fill the replay
    log and refuse the waiting nodes for input no command asked for (endless `yes | exec -f 1 ... -- true`)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    broadcast = StdinBroadcast(read_end, window=4 * CHUNK, replay=16 * CHUNK)
    pauses = broadcast._cond = _ReaderPauses(broadcast)  # before any feed or reader uses the condition
    feeds = [broadcast.feed(f"n{i}") for i in range(4)]
    bound = broadcast.window + CHUNK  # reading stops at the window; one read may pass it by less than a CHUNK
    stop = threading.Event()

    def endless() -> None:  # `yes`: always more input
        while not stop.is_set():
            try:
                os.write(write_end, b"y\n" * 4096)
            except BlockingIOError:
                time.sleep(0.001)

    source = threading.Thread(target=endless)
    source.start()
    try:
        for turn, feed in enumerate(feeds, 1):
            feed.start()  # raises NodeError if the input passed the replay bound before its turn
            # The command runs and takes nothing (`true`): the reader fills the window for it, from the first byte.
            wait_for(lambda: broadcast.peak >= broadcast.window)
            assert feed.peek(2) == b"y\n"
            with pauses:
                feed.close()  # ... and the command ends
                seen = pauses.count
            if turn < len(feeds):  # nodes wait: the reader, woken by the close, must pause again, not read on
                wait_for(lambda seen=seen: pauses.count > seen or broadcast.peak > bound)
            else:  # nobody is left: the reader leaves
                wait_for(lambda: broadcast._thread is not None and not broadcast._thread.is_alive())
            assert broadcast.peak <= bound, f"read on after turn {turn}"
    finally:
        stop.set()
        source.join(5)
        broadcast.stop()
        os.close(write_end)
        os.close(read_end)


def test_many_small_reads_are_merged_and_peek_spans_chunks():
    """40,000 reads of 100 B (a trickling pipe) make a few CHUNK-sized chunks, not 40,000: finding a feed's place
    stays cheap, and a peek hands out up to its limit across chunk boundaries."""
    broadcast = StdinBroadcast(None, window=8 * MIB, replay=8 * MIB)
    fast, slow = broadcast.feed("fast"), broadcast.feed("slow")
    fast.start()
    slow.start()
    pieces = [bytes([i % 251]) * 100 for i in range(40_000)]
    got_fast, got_slow = bytearray(), bytearray()
    for i, piece in enumerate(pieces):
        broadcast._append(piece)
        assert len(broadcast._chunks) - broadcast._first <= (broadcast._head - broadcast._base) // CHUNK + 1
        if i % 1000 == 999:  # the fast feed takes everything now and then, in big merged peeks
            while data := fast.peek(3 * CHUNK):
                assert len(data) == min(3 * CHUNK, broadcast._head - fast.pos)  # merged, not 100 B at a time
                got_fast += data
                fast.advance(len(data))
    broadcast._append(b"")
    assert len(broadcast._chunks) <= 4_000_000 // CHUNK + 1
    first = slow.peek(3 * CHUNK)
    assert len(first) == 3 * CHUNK  # across chunk boundaries
    while data := slow.peek(3 * CHUNK):
        got_slow += data
        slow.advance(len(data))
    assert bytes(got_fast) == bytes(got_slow) == b"".join(pieces)
    assert slow.ended
    assert fast.ended
    slow.close()
    fast.close()
    assert broadcast._base == broadcast._head  # nothing kept once every feed is done


def test_a_node_refused_its_input_is_told_what_to_do_about_it(capsys):
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors

    broadcast = StdinBroadcast(None, window=4, replay=4)
    feed = broadcast.feed("n2")
    broadcast._append(b"x" * 10)  # past the replay bound while n2 waits
    with pytest.raises(NodeError) as caught:
        feed.start()
    other = NodeError("n3", "agent", "n3: agent gone.")  # no hint of its own: its kind's
    report_node_errors([caught.value.as_report(), other.as_report()], ERROR_HINTS)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("factoryctl: n2: standard input passed ")
    assert lines[0].endswith("slot.")
    assert lines[2:] == [f"hint: {caught.value.hint}", f"hint: {ERROR_HINTS['agent']}"]
    assert "--fanout" in lines[2]
    assert "hint" not in caught.value.as_json()  # listings keep {node, error, message}


def test_stop_wakes_the_reader_and_waits_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader blocked waiting for input leaves at stop() at once, not at its next look (made an hour away here)."""
    about_to_block = threading.Event()
    readable = stdin_stream.readable

    def readable_seen(watched: list[int], timeout_s: float) -> list[int]:
        about_to_block.set()  # the reader's last step before it blocks in poll
        return readable(watched, timeout_s)

    monkeypatch.setattr(stdin_stream, "_POLL_S", 3600.0)
    monkeypatch.setattr(stdin_stream, "readable", readable_seen)
    read_end, write_end = os.pipe()  # open and silent: the reader blocks in poll
    broadcast = StdinBroadcast(read_end)
    feed = broadcast.feed("n")
    feed.start()
    thread = broadcast._thread
    assert thread is not None
    assert about_to_block.wait(10)
    broadcast.stop()  # waits a second at most: only its wake-up ends a wait of an hour in time
    assert not thread.is_alive()
    assert broadcast._wake is None  # its wake-up pipe is closed
    feed.close()
    os.close(read_end)  # only now: a reader left blocked on them must not find their numbers reused
    os.close(write_end)


def test_a_source_that_fails_to_read_is_reported_not_taken_for_its_end():
    import pty

    master, slave = pty.openpty()
    os.close(slave)  # a terminal that hung up: reading its master fails with EIO
    broadcast = StdinBroadcast(master)
    feed = broadcast.feed("n")
    feed.start()
    deadline = time.monotonic() + 10
    while not feed.ended and time.monotonic() < deadline:
        feed.wait(0.1)
    broadcast.stop()
    os.close(master)
    assert feed.ended  # the commands get EOF ...
    assert broadcast.error is not None  # ... and exec says why
    assert broadcast.error.startswith("standard input could not be read (")
    assert broadcast.error.endswith("EOF there.")


def test_a_feeds_wakeup_descriptor_is_readable_exactly_when_there_is_news():
    import select

    def readable(fd: int) -> bool:
        return bool(select.select([fd], [], [], 0)[0])

    broadcast = StdinBroadcast(None, window=MIB, replay=MIB)
    feed = broadcast.feed("n")
    feed.start()
    fd = feed.wakeup_fd()
    assert readable(fd)  # look once at first
    feed.clear_wakeup()
    assert not readable(fd)
    for _ in range(3):
        broadcast._append(b"x" * 10)  # more input
    assert readable(fd)
    feed.clear_wakeup()
    assert not readable(fd)
    broadcast._append(b"")  # its end
    assert readable(fd)
    feed.clear_wakeup()
    feed.close()  # its close
    assert readable(fd)
    feed.release_wakeup()
    broadcast._append(b"late")  # nothing to signal any more, and no error
