"""Channel operations that can never send after our CLOSE (paramiko issues #1115, #1584, #1705).

paramiko builds a channel message under the channel's lock but sends it after letting the lock go, and its transport
thread answers the server's CHANNEL_CLOSE with our CLOSE at once. An EOF, stdin data, a `signal` request or a window
adjust built just before can then leave after that CLOSE, and OpenSSH drops the whole connection for a message on a
channel that no longer exists ("ieof packet referred to nonexistent channel 2"), failing every other command that
shares it. A command that ends before the EOF we send after `exec` goes out (`echo`, run with no stdin) is enough,
on a loaded machine.

`operation(chan)` runs one of our operations on a channel at a time, and while one runs the transport thread holds
its answer to the server's CLOSE back: the operation answers it when done, after its own message went out. An
operation started after the server's CLOSE is told the channel is closed, and sends nothing. The transport thread
never waits for an operation (it must stay free to read: a send can be waiting for a key exchange or a window).
`send_signal` and `close_channel` are two such operations, for commands and agents alike; `feed_stdin` sends a
command's stdin and its EOF as such operations.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

    from factoryctl.transport.stdin_stream import Feed

#: The most of a command's stdin sent in one message.
_SEND_CHUNK = 1 << 15


class _Guard:
    """One channel's state: our operations one at a time, and the server's CLOSE when it came during one."""

    def __init__(self) -> None:
        self.operations = threading.Lock()
        self.state = threading.Lock()  # held only to flip the fields below, never across I/O
        self.busy = False
        self.held: Any = None  # the server's CLOSE message, answered when the running operation ends
        self.peer_closed = threading.Event()  # the server's CLOSE came (answered or held)


_GUARDS: weakref.WeakKeyDictionary[paramiko.Channel, _Guard] = weakref.WeakKeyDictionary()
_REGISTRY = threading.Lock()


def guard(chan: paramiko.Channel) -> None:
    """Watch `chan`'s CLOSE from now on; call it right after the channel is opened, before the command starts."""
    _guard(chan)


def _guard(chan: paramiko.Channel) -> _Guard:
    with _REGISTRY:
        found = _GUARDS.get(chan)
        if found is None:
            found = _GUARDS[chan] = _Guard()
            _install(chan.get_transport())
        return found


def _install(transport: paramiko.Transport) -> None:
    """Route the transport's CHANNEL_CLOSE messages through `_on_close` (once per transport)."""
    from paramiko.common import MSG_CHANNEL_CLOSE

    table: dict[int, Any] = getattr(transport, "_channel_handler_table")  # noqa: B009 - private, not in the stubs
    if table.get(MSG_CHANNEL_CLOSE) is not _on_close:
        setattr(transport, "_channel_handler_table", {**table, MSG_CHANNEL_CLOSE: _on_close})  # noqa: B010


def _on_close(chan: paramiko.Channel, message: paramiko.Message) -> None:
    """The transport thread got the server's CLOSE: answer it now, or leave it to the operation under way."""
    found = _GUARDS.get(chan)
    if found is not None:
        with found.state:
            found.peer_closed.set()
            if found.busy:
                found.held = message
                return
    _answer_close(chan, message)


def _answer_close(chan: paramiko.Channel, message: paramiko.Message) -> None:
    import paramiko

    getattr(paramiko.Channel, "_handle_close")(chan, message)  # noqa: B009 - paramiko's own CLOSE handling


@contextmanager
def operation(chan: paramiko.Channel) -> Iterator[bool]:
    """Run one operation on `chan` (others wait); yields False once the channel is closed: send nothing then.

    Closing the channel (`chan.close()`) is safe either way and should run in an operation too, so that it cannot
    overtake a message another thread is sending on it. Nothing in an operation may wait for the server.
    """
    found = _guard(chan)
    with found.operations:
        with found.state:
            found.busy = True
            still_open = not found.peer_closed.is_set() and not chan.closed
        try:
            yield still_open
        finally:
            with found.state:
                found.busy = False
                held, found.held = found.held, None
            if held is not None:
                import paramiko

                # the channel is closed and forgotten before our CLOSE is sent: if that fails, the connection is gone
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    _answer_close(chan, held)


def send_signal(chan: paramiko.Channel, name: str) -> None:
    """Send an RFC 4254 `signal` request (OpenSSH >= 7.9 delivers it); best effort before closing."""
    import paramiko
    from paramiko.common import cMSG_CHANNEL_REQUEST

    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    with contextlib.suppress(Exception), operation(chan) as still_open:
        if still_open:
            chan.transport._send_user_message(message)  # type: ignore[union-attr]


def close_channel(chan: paramiko.Channel) -> None:
    """Close a command's channel (never ahead of a message another thread is sending on it)."""
    import paramiko

    with contextlib.suppress(OSError, EOFError, paramiko.SSHException), operation(chan):
        chan.close()


def feed_stdin(chan: paramiko.Channel, feed: Feed) -> tuple[bool, bool]:
    """Send what `feed` has and the channel's window takes now, never blocking; EOF once the input ended.

    Returns (still feeding, input waiting for window). Feeding ends when EOF was sent or the command no longer takes
    input (it exited or closed its stdin, like `head -c1`), which is not an error, as with ssh.
    """
    import paramiko

    try:
        while True:
            if chan.closed or chan.eof_sent or chan.exit_status_ready():
                feed.close()
                return False, False
            data = feed.peek(_SEND_CHUNK)
            if not data and not feed.ended:
                return True, False
            if data and not chan.send_ready():
                return True, True
            with operation(chan) as still_open:  # the command may have ended since the look above
                if still_open and data:
                    feed.advance(chan.send(data))
                elif still_open:
                    chan.shutdown_write()
            if not still_open or not data:
                feed.close()
                return False, False
    except (OSError, EOFError, paramiko.SSHException):
        feed.close()
        return False, False
