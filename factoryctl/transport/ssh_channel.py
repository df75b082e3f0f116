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

A jump host's tunnel (`as_tunnel`: a direct-tcpip channel that a node's own transport reads and writes as its
socket) needs the same: the node's transport thread sends on it (a CLOSE answering the node's, a keepalive) and
acknowledges what it read (a window adjust) while another thread closes the node's connection, and so the tunnel.
One tunnel's late message used to drop the jump connection of every node behind it ("data packet referred to
nonexistent channel 7"). Its sends, acknowledgements and close are operations, and none waits for the server
inside one: a send waits for window outside, a read waits for data outside.

`drain` reads a command's stdout and stderr together while it feeds its stdin, and looks at the deadline between
any two chunks: a command that prints faster than its output is taken (`yes` under `exec --lines`) used to keep it
reading for ever.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from factoryctl.errors import NodeError
from factoryctl.transport.base import CappedOutput, OutputSink
from factoryctl.transport.polling import Watched, readable
from factoryctl.transport.quoting import shell_quote

if TYPE_CHECKING:
    import paramiko

    from factoryctl.transport.stdin_stream import Feed

#: The most of a command's output read in one call.
_READ_CHUNK = 1 << 16
#: How soon to look again at a full send window while feeding a command's stdin.
_SEND_POLL_S = 0.005
#: How soon to look again for the exit status while still feeding a command that closed its output.
_EOF_POLL_S = 0.05
#: The most of a command's stdin sent in one message.
_SEND_CHUNK = 1 << 15
#: The most digits of a process id (Linux's pid_max is at most 2**22).
_PID_DIGITS = 10


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


def signals_delivered(server_version: str | None, user: str) -> bool:
    """Whether sshd delivers `signal` requests to `user`'s commands: OpenSSH >= 7.9, to logins but root's.

    OpenSSH refuses them to root ("session signalling requires privilege separation"), and older versions and
    other servers ignore them.
    """
    version = re.search(r"OpenSSH_(\d+)\.(\d+)", server_version or "")
    delivered = version is not None and (int(version[1]), int(version[2])) >= (7, 9)
    return delivered and user != "root"


def timeout_error(
    node: str, timeout: float | None, ended: bool, group: int | None, left_by: str | None = None
) -> NodeError:
    """The error of a command that did not finish within `timeout`, saying whether it was stopped (`ended`).

    `left_by`: the command's process group `group` has ended, yet something keeps its output open: a process it
    started in a new session (`setsid`, a daemon), which the group's kill cannot reach; `left_by` is the login user
    whose processes to look through. No `kill -- -GROUP` is offered then: that group no longer exists.
    """
    within = f"command did not finish within {timeout:g} s" if timeout is not None else "command did not finish"
    hang = "raise --timeout, or look at what hangs on the node."
    if ended:
        return NodeError(node, "timeout", f"{within} and was killed", hang)
    if group is None:
        return NodeError(node, "timeout", f"{within} and may still be running on the node", hang)
    if left_by is not None:
        return NodeError(
            node,
            "timeout",
            f"{within}; its process group {group} has ended, but processes it started in a new session (setsid, a "
            "daemon) may still be running on the node, holding its output open",
            f"look for them with `factoryctl exec {node} -- ps -o pid,sess,args -u {shell_quote(left_by)}`; {hang}",
        )
    stop = f"{stop_group_hint(node, group)}; raise --timeout, or look at what hangs."
    return NodeError(node, "timeout", f"{within} and may still be running on the node (process group {group})", stop)


def stop_group_hint(node: str, group: int) -> str:
    """How to end a command's process group `group` on `node` that may still be running (no full stop)."""
    return f"stop it with `factoryctl exec {node} -- kill -KILL -- -{group}`"


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


def as_tunnel(chan: paramiko.Channel) -> paramiko.Channel:
    """Make a direct-tcpip channel, just opened, safe as a node transport's socket (see the module doc); returns it."""
    guard(chan)
    chan.__class__ = _tunnel_class()  # the same channel, whose send, recv and close are operations
    return chan


@functools.cache
def _tunnel_class() -> type[paramiko.Channel]:
    """Paramiko's Channel with `send`, `recv` and `close` as operations (built on first use: paramiko loads late)."""
    import paramiko

    class TunnelChannel(paramiko.Channel):
        """A jump host's tunnel; the node's transport uses it as its socket."""

        def send(self, s: bytes | bytearray) -> int:
            return _tunnel_send(self, s)

        def recv(self, nbytes: int) -> bytes:
            return _tunnel_recv(self, nbytes)

        def close(self) -> None:
            # a tunnel whose jump connection died has nothing to tell: closing it never fails
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException), operation(self):
                paramiko.Channel.close(self)

    return TunnelChannel


def _tunnel_send(chan: paramiko.Channel, data: bytes | bytearray) -> int:
    """`Channel.send` as an operation that never waits inside: a full window is waited for outside, in timeout."""
    import paramiko

    deadline = None if chan.timeout is None else time.monotonic() + chan.timeout
    while True:
        with operation(chan) as still_open:
            if not still_open:
                raise OSError("the jump host's tunnel is closed")
            if chan.send_ready():  # room in the window (ours to use: sends are operations, one at a time)
                return paramiko.Channel.send(chan, data)
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError()  # as a socket's: the node's transport tries again
        with chan.lock:  # what a window adjust (or the close) notifies
            if chan.out_window_size == 0 and not chan.closed and not chan.eof_sent:
                chan.out_buffer_cv.wait(remaining)


def _tunnel_recv(chan: paramiko.Channel, nbytes: int) -> bytes:
    """`Channel.recv` with its window adjust sent in an operation (the data is waited for outside)."""
    import paramiko
    from paramiko.buffered_pipe import PipeTimeout
    from paramiko.common import cMSG_CHANNEL_WINDOW_ADJUST

    try:
        data: bytes = chan.in_buffer.read(nbytes, chan.timeout)
    except PipeTimeout:
        raise TimeoutError() from None
    with operation(chan) as still_open:
        ack: int = getattr(paramiko.Channel, "_check_add_window")(chan, len(data)) if still_open else 0  # noqa: B009
        if ack > 0:
            message = paramiko.Message()
            message.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
            message.add_int(chan.remote_chanid)
            message.add_int(ack)
            chan.transport._send_user_message(message)  # type: ignore[union-attr]
    return data


class CommandStderr(CappedOutput):
    """A command's stderr without the line in which its command line reported its process group (`group`).

    That line (`TOKEN:PID`, from `quoting.with_group_report`) comes before anything the command writes, after what
    the login shell's startup files may have written; it is cut out before anything reaches the sink, so what the
    user sees stays byte for byte what the command wrote. Without a `token` nothing is looked for.
    """

    def __init__(self, token: str | None, limit: int, number: int = 2, sink: OutputSink | None = None) -> None:
        super().__init__(limit, number, sink)
        self._marker = b"" if token is None else f"{token}:".encode()
        self._held = b""  # what may be the start of the report: passed on once it is known not to be

    def add(self, data: bytes) -> None:
        """Pass a chunk on (see CappedOutput.add), once the report is cut out of it."""
        if not self._marker:
            self._pass(data)
            return
        held = self._held + data
        start = held.find(self._marker)
        if start < 0:  # what ends the chunk may be the report's beginning: kept until the next one
            keep = min(len(held), len(self._marker) - 1)
            self._held = held[len(held) - keep :]
            self._pass(held[: len(held) - keep])
            return
        end = held.find(b"\n", start)
        if end < 0 and len(held) - start <= len(self._marker) + _PID_DIGITS:
            self._held = held  # the report, not whole yet
            return
        number = held[start + len(self._marker) : end] if end >= 0 else b""
        self._marker, self._held = b"", b""  # found (or something else: then passed on as it is)
        if number.isdigit() and len(number) <= _PID_DIGITS:
            self.group = int(number)
            held = held[:start] + held[end + 1 :]
        self._pass(held)

    def finish(self) -> None:
        """The command is over: pass on what was held back."""
        held, self._held, self._marker = self._held, b"", b""
        self._pass(held)

    def _pass(self, data: bytes) -> None:
        if data:
            super().add(data)


#: The most a login shell's startup files may print on stdout before a command's output starts (`CommandStdout`):
#: past it the marker is given up on and everything is passed on.
_LOGIN_NOISE_LIMIT = 1 << 20


class CommandStdout(CappedOutput):
    """A command's stdout without what the login shell's startup files printed there before the command started.

    A `~/.bashrc` that echoes a banner prints it on stdout ahead of every command, where a probe's answer (a uid, a
    version, nvidia-smi's CSV) is read. The command line prints a line `TOKEN` first (`SshConnection.run`):
    everything up to and including it is dropped, before anything reaches the sink. Should it never come (over
    `_LOGIN_NOISE_LIMIT` first, or the command line did not run), what was held is passed on as it is. What the
    startup files write on stderr stays: it is only ever shown, and may say what went wrong.
    """

    def __init__(self, token: str, limit: int, sink: OutputSink | None = None) -> None:
        super().__init__(limit, 1, sink)
        self._marker = f"{token}\n".encode()
        self._held = b""

    def add(self, data: bytes) -> None:
        """Pass a chunk on (see CappedOutput.add) once the marker went by; hold it until then."""
        if not self._marker:
            super().add(data)
            return
        held = self._held + data
        at = held.find(self._marker)
        if at < 0 and len(held) <= _LOGIN_NOISE_LIMIT:
            self._held = held
            return
        rest = held if at < 0 else held[at + len(self._marker) :]
        self._marker, self._held = b"", b""
        if rest:
            super().add(rest)

    def finish(self) -> None:
        """The command is over: pass on what was held back (the marker never came)."""
        held, self._held, self._marker = self._held, b"", b""
        if held:
            super().add(held)

    def value(self, note: bytes = b"") -> bytes:
        """What was kept (see CappedOutput.value), anything still held included."""
        self.finish()
        return super().value(note)


def drain(
    chan: paramiko.Channel,
    deadline: float | None,
    out: CappedOutput,
    err: CappedOutput,
    feed: Feed | None = None,
    until: Callable[[], bool] | None = None,
) -> bool:
    """Read stdout and stderr together (into `out`, `err`) until the channel is done, feeding `feed` (then EOF).

    The command's end is never held up by input: once it is done, what was not sent is left. Also stops once
    `until()` holds (after a read). False if the deadline passed first.
    """
    wakeup = None if feed is None else feed.wakeup_fd()
    try:
        return _drain_loop(chan, deadline, out, err, feed, wakeup, until)
    finally:
        if feed is not None:
            feed.release_wakeup()


def _drain_loop(
    chan: paramiko.Channel,
    deadline: float | None,
    out: CappedOutput,
    err: CappedOutput,
    feed: Feed | None,
    wakeup: int | None,
    until: Callable[[], bool] | None,
) -> bool:
    feeding = feed is not None
    while True:
        wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        watched: list[Watched] = [chan]
        if feed is not None and feeding:
            feed.clear_wakeup()  # before looking: news after this point wakes the poll below
            feeding, backlog = feed_stdin(chan, feed)
            if feeding and backlog:
                wait = min(wait, _SEND_POLL_S)  # a window adjust does not wake the poll: look again soon
            elif feeding and wakeup is not None:
                watched.append(wakeup)  # more input (or its end) wakes it
        if chan.eof_received:  # EOF leaves the channel readable for good: polling it would spin
            if len(watched) > 1:
                readable(watched[1:], min(wait, _EOF_POLL_S))
            else:
                chan.status_event.wait(wait)  # set by the exit status, or the close
        else:
            readable(watched, wait)
        _read_arrived(chan, deadline, out, err)
        done = chan.closed or (chan.eof_received and chan.exit_status_ready())
        if until is not None and until():
            return True
        if done and not chan.recv_ready() and not chan.recv_stderr_ready():
            return True
        if chan.transport is None or not chan.transport.is_active():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


def _read_arrived(chan: paramiko.Channel, deadline: float | None, out: CappedOutput, err: CappedOutput) -> None:
    """Read what has arrived on stdout and stderr, a chunk of each in turn, until neither has more or `deadline`.

    Bounded by the deadline: a command that prints faster than the sink takes it (`yes` under `--lines`) always has
    more waiting, and reading it all first kept the deadline from ever being looked at.
    """
    while True:
        got = False
        if chan.recv_ready():
            with operation(chan):  # a read may send a window adjust
                data = chan.recv(_READ_CHUNK)
            out.add(data)  # outside the operation: a `--lines` sink may wait for a slow terminal
            got = True
        if chan.recv_stderr_ready():
            with operation(chan):
                data = chan.recv_stderr(_READ_CHUNK)
            err.add(data)
            got = True
        if not got or (deadline is not None and time.monotonic() >= deadline):
            return
