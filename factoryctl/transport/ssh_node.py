"""The `ssh` NodeTransport: run commands and the node agent over one persistent connection.

The agent zipapp is shipped to a private per-user cache on the node and started from inside it after the same
shell re-checks it (transport/agent_cache.py), as the argv of docs/agent-protocol.md (quoted by `quoting.shell_join`) under
`env -i` with just PATH and HOME, so a node's login environment (PYTHONPATH, LD_PRELOAD ...) cannot break it, and
its stdin/stdout become an `AgentSession`; its login shell's pid, printed first, is what gets killed should it hang
(`_launch_line`). A node with no usable Python (the command exits 126/127, or the
interpreter is older than 3.9) falls back to nvidia-smi through `SmiBridge`, which speaks the same protocol.
"""

from __future__ import annotations

import collections
import contextlib
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.agent_cache import CACHE_CHANGED, agent_command, remote_cache_dir, ship_agent
from factoryctl.transport.agent_lines import MAX_LINE_BYTES, MAX_STDERR_LINE, AgentLines
from factoryctl.transport.base import CommandResult, OutputSink
from factoryctl.transport.hints import NO_PYTHON_HINT
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.node_leftovers import NODE_LEFTOVERS
from factoryctl.transport.quoting import shell_join, signal_group
from factoryctl.transport.session import AgentSession
from factoryctl.transport.ssh import SshConnection, SshOptions
from factoryctl.transport.ssh_channel import close_channel, send_signal
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_pool import SshPool
from factoryctl.transport.stdin_stream import Stdin

if TYPE_CHECKING:
    import paramiko

    from factoryctl.config import FactoryConfig


#: Exit statuses of a shell that could not find or run the interpreter.
_NO_PYTHON = (126, 127)

#: Jump hosts are shared by every transport of this process: one handshake per jump host, not one per node.
_JUMPS = SshPool()


class SshTransport:
    """The NodeTransport of an SSH node (see transport/base.py)."""

    def __init__(self, node: NodeSpec, factory: str, connection: SshConnection, options: SshOptions) -> None:
        self.node = node
        self.factory = factory
        self.connection = connection
        self.options = options
        #: Whether the last start_agent uploaded the zipapp (tests and `nodes check` look at it).
        self.uploaded = False
        #: Whether the zipapp it started is known whole (uploaded, or its sha256 compared), not judged on its size.
        self.whole = False
        self.backend: str | None = None

    @property
    def cache(self) -> str:
        """The agent cache directory on the node, resolved when an agent starts (`exec` never needs it)."""
        return remote_cache_dir(self.options.remote_cache)

    @classmethod
    def open(cls, node: NodeSpec, factory: str, options: SshOptions) -> SshTransport:
        """Connect to the node (through its shared jump host, if any, opened with `options` too) and authenticate."""
        target = resolve(node, options.ssh_config)
        via = None if target.jump is None else _JUMPS.jump(node.name, target.jump, options)
        return cls(node, factory, SshConnection.open(node.name, target, options, via), options)

    def run(
        self, argv: list[str], timeout: float, stdin: Stdin = None, on_output: OutputSink | None = None
    ) -> CommandResult:
        """Run argv on the node through the login shell, quoted by `shell_join`; `stdin` is fed, then EOF.

        What the login shell's startup files print is part of the output, as with ssh (`exec`).
        """
        return self.connection.run(argv, timeout=timeout, stdin=stdin, on_output=on_output, login_output=True)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT then SIGHUP to the running commands (see SshConnection.interrupt)."""
        self.connection.interrupt()

    def start_agent(self, timeout: float, zipapp: Path | None = None) -> AgentSession:
        """Ship (if needed) and start the agent; wait for its hello. No Python on the node: nvidia-smi instead."""
        if zipapp is None:
            from factoryctl.transport.bundle import agent_zipapp

            zipapp = agent_zipapp()
        shipped = ship_agent(self.connection, zipapp, self.cache, timeout)
        self.uploaded, self.whole = shipped.uploaded, shipped.whole
        real = PurePosixPath(shipped.path)
        # started from inside the re-checked cache (see agent_command): the paths are relative to it
        argv = agent_argv(self.node, self.factory, self.node.python, f"./{real.name}", "./sim")
        chan = self.connection.channel()
        # the agent's first line follows a marker line: what the login shell's startup files print comes before it
        marker = f"factoryctl-agent-{secrets.token_hex(8)}"
        chan.exec_command(_launch_line(marker, agent_command(argv, str(real.parent), real.name)))
        chan.settimeout(
            None
        )  # the session waits with its own timeouts; the liveness watch (ssh_watch.py) notices dead peers
        tail = _ChannelStderr(chan)
        lines = _ChannelLines(chan.recv, after=marker.encode())
        # until it is closed, an interrupted factoryctl kills it on its way out (node_leftovers.py)
        leftover = NODE_LEFTOVERS.add(lambda: _kill_abandoned(chan, self.connection, session, lines.launched))
        session = AgentSession(
            self.node.name,
            cast("IO[bytes]", _ChannelInput(chan)),
            cast("IO[bytes]", lines),
            on_close=lambda: _close_agent(chan, self.connection, session, lines.launched, leftover),  # read at close
            stderr_tail=tail.text,
            cut_off=lambda: _connection_lost(chan, self.connection),
            connection_dead=lambda: self.connection.known_dead(AGENT_KILL_TIMEOUT_S),
        )
        self.connection.watch()  # a link that goes down before the hello ends the wait (ssh_watch.py)
        try:
            hello = session.wait_hello(timeout)
        except BaseException as exc:
            NODE_LEFTOVERS.discard(leftover)
            if not isinstance(exc, NodeError):  # an interrupt: killed here, or on the CLI's way out
                _kill_abandoned(chan, self.connection, session, lines.launched)
                raise
            if exc.kind == "timeout" and not self.connection.answers(AGENT_KILL_TIMEOUT_S):  # the link, not the agent
                chan.close()
                raise self.connection.lost("while starting the agent") from None
            status = _exit_status(chan, HUNG_STATUS_S if exc.kind == "timeout" else ENDED_STATUS_S)
            if status is None:  # still running, hello or not (hung, or a protocol this factoryctl does not speak)
                _kill(self.connection, lines.launched, session.hello_info.get("pid"))
            chan.close()
            return self._start_failed(exc, status, real, timeout, tail.text)
        self.backend = str(hello.get("backend"))
        return session

    def _start_failed(
        self, exc: NodeError, status: int | None, real: PurePosixPath, timeout: float, last_words: Callable[[], str]
    ) -> AgentSession:
        """The agent at `real` ended (exit `status`) or failed before its hello: nvidia-smi instead, or say why."""
        if status == CACHE_CHANGED:
            raise NodeError(
                self.node.name,
                "agent",
                f"the agent cache directory {real.parent} on the node changed after it was checked (a symbolic "
                "link or another user's file in its place), so the agent was not started.",
                "on the node, find out who replaced it and make it a private directory of the login user again.",
            ) from None
        if status in _NO_PYTHON or (status is not None and not self._python_usable(timeout)):
            return self._smi_session(timeout, last_words())
        if not self.connection.transport.is_active():
            raise self.connection.lost("while starting the agent") from None
        if status is not None and exc.kind == "agent":  # Python ran, but the agent ended before its hello
            raise NodeError(self.node.name, exc.kind, exc.message, self._exited_hint(real)) from None
        raise exc

    def _exited_hint(self, real: PurePosixPath) -> str:
        """What to do when the agent ended before its hello: a file judged on its size alone may be damaged."""
        if self.whole:
            how = "was uploaded just now" if self.uploaded else "matches this factoryctl's (sha256)"
            return (
                f"the agent's file {how}, so it is whole: the error comes from {self.node.python} on the node; "
                "check that it runs (or set the node's `python:` in factory.yaml)."
            )
        return (
            f"the cached agent may be damaged (it was judged on its size alone): remove it on the node "
            f"(`rm -- {shlex.quote(str(real))}`) and factoryctl uploads it again at the next start."
        )

    def _python_usable(self, timeout: float) -> bool:
        """After the agent failed to start: is the node's interpreter there and >= 3.9 (else fall back to smi)?"""
        probe = [self.node.python, "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 9) else 3)"]
        try:
            return self.connection.run(probe, timeout=timeout).exit_code == 0
        except NodeError:
            return True  # the connection is the problem, not Python: report the agent's failure

    def _smi_session(self, timeout: float, why: str) -> AgentSession:
        from factoryctl.transport.smi import SmiBridge

        bridge = SmiBridge(self.node.name, self.connection, timeout, reason=why.strip())
        session: AgentSession = bridge.session()
        try:
            session.wait_hello(timeout)
        except NodeError as exc:
            session.close()  # its pipes to the bridge: left open, they waited for the garbage collector
            raise NodeError(
                self.node.name,
                "driver",
                f"no usable {self.node.python} for the agent ({why.strip() or 'not found'}), and "
                f"{bridge.error or 'nvidia-smi did not answer'}",
                NO_PYTHON_HINT,
            ) from exc
        self.backend = "smi"
        self.connection.watch()
        return session

    def close(self) -> None:
        """Close the connection (jump hosts stay shared)."""
        self.connection.close()


#: How long an agent whose hello did not come within --timeout gets to report its exit before it is killed as hung.
#: Any exit status sshd sent before the round trip just made (`SshConnection.answers`) came ahead of its answer, so
#: this only catches an agent exiting at this very moment: a longer wait added itself to every hung agent's
#: --timeout (`--timeout 3` took 5 s).
HUNG_STATUS_S = 0.2

#: How long an agent that ended its output before its hello (or said one of another protocol) gets to report its exit
#: status, which follows the end of its output: the status tells a missing Python or a changed cache from an error.
ENDED_STATUS_S = 2.0


#: How long a closing agent gets to exit on its own (after `shutdown` or its stdin's EOF) before it is killed.
AGENT_EXIT_GRACE_S = 1.0


#: How long the `kill` of an agent that did not exit may take, channel open included: a round trip on a connection
#: that answers. A connection that left its liveness check unanswered this long is taken for dead: neither the
#: agent's `shutdown` nor its kill is tried on it (`_close_agent`), as neither could cross it.
AGENT_KILL_TIMEOUT_S = 2.0


def _launch_line(marker: str, command: str) -> str:
    """`command` (the agent's start, which `exec`s) after a line `MARKER:PID` on stdout, PID the login shell's.

    sshd starts the login shell as the leader of its own session and process group, which `exec` makes the agent:
    PID names the agent and all it starts, known before the interpreter runs, so an agent that hangs before its
    hello is killed too (sshd refuses `signal` requests for root). fish has no `$$`: an `sh` prints its `$PPID`.
    """
    report = shell_join(["sh", "-c", 'echo "$0:$PPID"', marker])
    return f"{report}; {command}"


def _close_agent(
    chan: paramiko.Channel,
    connection: SshConnection,
    session: AgentSession,
    launched: int | None = None,
    leftover: int | None = None,
) -> None:
    """End the agent (`_end_agent`), or on a connection known dead just close its channel: nothing else can cross.

    Closed, it is no longer among what an interrupted factoryctl ends on its way out (`leftover`: node_leftovers.py).

    A silent connection used to cost the link's teardown the kill's whole bound (and the `shutdown` wait before it)
    for messages that never arrived, delaying the reconnect that was the way out (an agent that runs exits at its
    stdin's EOF once the node's sshd notices the connection is gone). A stopped agent on a live connection is still
    killed.
    """
    if leftover is not None:
        NODE_LEFTOVERS.discard(leftover)
    if connection.known_dead(AGENT_KILL_TIMEOUT_S):
        close_channel(chan)
    else:
        _end_agent(chan, connection, session, launched)


def _end_agent(
    chan: paramiko.Channel, connection: SshConnection, session: AgentSession, launched: int | None = None
) -> None:
    """Close the agent's channel; an agent that has not exited by then (stopped with SIGSTOP, or hung) is killed.

    sshd signals nothing when the channel of a command without a terminal closes, and a stopped agent never reads
    its EOF: each stalled session used to leave one agent behind on the node, stopped for good. SIGKILL ends a
    stopped process too: sent as a `signal` request (OpenSSH >= 7.9 delivers it to the session's process group,
    but refuses it for root sessions) and as a kill on the same connection: of the process group and session of
    `launched`, the pid its command line printed (`_launch_line`), else of the pid of the hello. Only an agent
    that answered `shutdown` is given time to exit: one that failed or did not answer has exited, or
    never will (and on a dead connection every second spent here delays the node's reconnect).
    """
    grace = AGENT_EXIT_GRACE_S if session.shutdown_answered else 0.0
    if _exit_status(chan, grace) is None:
        send_signal(chan, "KILL")
        if not chan.exit_status_ready():
            _kill(connection, launched, session.hello_info.get("pid"))
    chan.close()


#: How long an agent's output may have ended before its exit status arrives (sshd sends it first when it exits).
EXIT_STATUS_LAG_S = 0.2


def _connection_lost(chan: paramiko.Channel, connection: SshConnection) -> NodeError | None:
    """Why the agent's output ended, when it was the connection (sshd killed, a reset) and not the agent exiting.

    An agent that exits gets its exit status sent before its channel closes; a connection that dies takes the
    channel with it and leaves no status (paramiko sets `status_event` on any close, so the status itself is read:
    -1 is none). That used to be reported as "the agent exited".
    """
    chan.status_event.wait(EXIT_STATUS_LAG_S)
    if chan.exit_status != -1 or connection.transport.is_active():
        return None
    return connection.lost(f"to {connection.target.label}")


def _kill_abandoned(
    chan: paramiko.Channel, connection: SshConnection, session: AgentSession, launched: int | None
) -> None:
    """Kill an agent its process gave up on (interrupted while it started or ran), as a failed session's: `_kill`."""
    send_signal(chan, "KILL")
    _kill(connection, launched, session.hello_info.get("pid"))
    close_channel(chan)


def _kill(connection: SshConnection, launched: int | None, hello_pid: object) -> None:
    """SIGKILL on the node, within `AGENT_KILL_TIMEOUT_S` all told (best effort: the link may be dead).

    To the process group and session of `launched` (the agent's login shell, their leader), else to the hello's pid.
    """
    if launched is not None and launched > 1:
        command = signal_group(launched, ["KILL"])
    elif type(hello_pid) is int and hello_pid > 1:
        command = shell_join(["kill", "-KILL", str(hello_pid)])
    else:
        return
    with contextlib.suppress(Exception):
        deadline = time.monotonic() + AGENT_KILL_TIMEOUT_S
        kill = connection.channel(timeout=AGENT_KILL_TIMEOUT_S)
        try:
            kill.exec_command(command)
            _exit_status(kill, max(deadline - time.monotonic(), 0.0))
        finally:
            kill.close()


def _exit_status(chan: paramiko.Channel, timeout: float) -> int | None:
    if chan.status_event.wait(timeout):
        return chan.recv_exit_status()
    return None


#: How many lines printed ahead of the agent's marker are kept, to be passed on if the marker never comes.
_SKIPPED_KEPT = 8


class _ChannelLines(AgentLines):
    """The agent's stdout (or stderr) read from its channel as lines, under the limits of every transport's agent.

    `AgentLines` reads and splits them (transport/agent_lines.py: the same rule as a local agent's pipes). With
    `after`, the lines up to the one ending with it are dropped (what a login shell's startup files print ahead of
    the agent); should the stream end without it, the first of them are passed on after all, so the session's error
    quotes what came.
    A marker line `AFTER:PID` (`_launch_line`) leaves PID in `launched` (the login shell's, which became the agent).
    """

    def __init__(
        self, recv: Callable[[int], bytes], limit: int = MAX_LINE_BYTES, cut: bool = False, after: bytes | None = None
    ) -> None:
        super().__init__(recv, limit, cut)
        self._marker = None if after is None else re.compile(re.escape(after) + rb"(?::([0-9]{1,10}))?\Z")
        self._skipped: list[bytes] = []  # the first lines dropped while waiting for `after`
        self.launched: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        """Each line with its newline (the last one may lack it), until EOF, the channel's close, or `close`."""
        for lines in self.batches():  # they end at EOF and once the channel is closed
            yield from self._wanted(lines)
        if self._marker is not None and not self.closed:  # no marker ever came: say what did
            yield from self._skipped

    def _wanted(self, lines: list[bytes]) -> list[bytes]:
        """`lines` without those up to the marker line `after` (none of them until it comes)."""
        if self._marker is None:
            return lines
        for i, line in enumerate(lines):
            found = self._marker.search(line.rstrip(b"\r\n"))
            if found is not None:
                self._marker = None
                self.launched = None if found[1] is None else int(found[1])
                return lines[i + 1 :]
        self._skipped.extend(lines[: max(0, _SKIPPED_KEPT - len(self._skipped))])
        return []


class _ChannelInput:
    """The agent's stdin, written straight to the channel; closing it sends EOF (no finalizer: see _ChannelLines)."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self._chan = chan
        self.closed = False

    def write(self, data: bytes) -> int:
        """Send all of `data`; OSError once the channel is closed, ValueError once this is."""
        if self.closed:
            raise ValueError("the agent's input is closed")
        self._chan.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def close(self) -> None:
        """EOF on the agent's stdin (once)."""
        if not self.closed:
            self.closed = True
            self._chan.shutdown_write()


class _ChannelStderr:
    """Drains the agent channel's stderr on a thread (so its window never fills) and keeps the last lines."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=5)
        self._chan = chan
        self._file = _ChannelLines(chan.recv_stderr, MAX_STDERR_LINE, cut=True)
        self._thread = threading.Thread(target=self._drain, daemon=True, name="agent-stderr")
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self._file:
                self._lines.append(raw.decode("utf-8", "replace"))

    def text(self) -> str:
        """The last lines; once the agent's output ended, its final words are waited for (briefly)."""
        if self._chan.eof_received or self._chan.closed:
            self._thread.join(1.0)
        return "".join(self._lines)


def open_ssh_transport(node: NodeSpec, config: FactoryConfig, timeout: float) -> SshTransport:
    """Connect to an SSH node with timeouts taken from factory.yaml's `ssh:` (bounded by `timeout`)."""
    step = min(float(config.settings.ssh.connect_timeout_s), timeout)
    options = SshOptions(
        connect_timeout_s=step,
        banner_timeout_s=step,
        auth_timeout_s=step,
        channel_timeout_s=max(step, timeout),
        keepalive_s=float(config.settings.ssh.keepalive_s),
        remote_cache=config.settings.ssh.remote_cache_dir,
    )
    return SshTransport.open(node, config.name, options)
