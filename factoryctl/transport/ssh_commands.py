"""Running commands on an SSH connection: the `run` / `run_shell` half of `SshConnection` (ssh.py), on its own.

Split out of ssh.py (which keeps connecting, tunnels, the liveness watch and closing) because it is one cohesive
piece: a command's channel, its exec, feeding its stdin while draining its output (`ssh_channel.drain`), the kill past
its timeout (over another channel where sshd delivers no signal), the late-kill timer for a sink that holds the reader
up, and what an interrupted factoryctl leaves on the node (node_leftovers.py). `SshConnection` inherits it as a mixin:
the methods are unchanged, only where they are written; what they use of the connection is declared below.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError, UsageError
from factoryctl.transport.base import CappedOutput, CommandResult, OutputSink, command_result, cut_short
from factoryctl.transport.held_open import read_for_grace
from factoryctl.transport.node_leftovers import NODE_LEFTOVERS
from factoryctl.transport.quoting import (
    GROUP_ENDED,
    check_command_line,
    command_line,
    group_ended_probe,
    group_token,
    signal_group,
)
from factoryctl.transport.ssh_channel import (
    CommandStderr,
    CommandStdout,
    close_channel,
    drain,
    operation,
    send_signal,
    signals_delivered,
    timeout_error,
)
from factoryctl.transport.stdin_stream import Feed, Stdin, as_feed

if TYPE_CHECKING:
    import paramiko

    from factoryctl.transport.ssh_config import SshTarget
    from factoryctl.transport.ssh_handshake import SshOptions
    from factoryctl.transport.ssh_interrupt import CommandInterrupts

__all__ = ["SINK_STALL_S", "STOP_TIMEOUT_S", "RunsCommands"]

#: How long killing a command past its timeout may take, what it prints meanwhile included (and an interrupt's
#: signals sent over another channel): a command not gone by then is said to be maybe still running.
STOP_TIMEOUT_S = 2.0
#: How long past its timeout a command whose output sink holds its reading thread up is killed by a timer instead.
SINK_STALL_S = 0.5


class RunsCommands:
    """Commands run on an SSH connection's channels (mixed into `SshConnection`, which provides what is declared)."""

    node: str
    target: SshTarget
    transport: paramiko.Transport
    options: SshOptions
    commands: CommandInterrupts

    if TYPE_CHECKING:

        def channel(self, timeout: float | None = None) -> paramiko.Channel:
            """A new session channel (`SshConnection.channel`)."""

        def lost(self, what: str, cause: BaseException | None = None) -> NodeError:
            """The error of this connection lost (`SshConnection.lost`)."""

        def watch(self, interval: float | None = None, timeout: float | None = None) -> None:
            """Start the liveness watch (`SshConnection.watch`)."""

    def run(
        self,
        argv: Sequence[str],
        timeout: float | None = None,
        stdin: Stdin = None,
        on_output: OutputSink | None = None,
        login_output: bool = False,
    ) -> CommandResult:
        """Run argv (quoted for any login shell: `quoting.shell_join`) and collect its output; killed past `timeout`.

        Its command line first reports the command's process group on stderr (`quoting.with_group_report`; cut out
        of the output), so that a timeout or an interrupt reaches the command where sshd delivers no signal. What
        the login shell's startup files print on stdout before the command starts (`echo` in `~/.bashrc`) is
        dropped, up to a marker line the command line prints first (`ssh_channel.CommandStdout`): factoryctl's own
        probes read only their command's answer. With `login_output` it is kept, as ssh shows it (`exec`).
        """
        token = group_token()
        command = command_line(argv, token, login_output)
        return self.run_shell(command, timeout, stdin, on_output, token, login_output)

    def run_shell(
        self,
        command: str,
        timeout: float | None = None,
        stdin: Stdin = None,
        on_output: OutputSink | None = None,
        group_token: str | None = None,
        login_output: bool = True,
        channel_timeout: float | None = None,
    ) -> CommandResult:
        """Run a command line that was already quoted (internal use: built with `shell_join` by the caller).

        `stdin` (bytes, or a `Feed` streaming while the command runs) is fed to the command while its output is read
        (so neither side can stall on a full window), then its stdin is closed (EOF); without it the command's stdin
        is closed at once. A command that exits or closes its stdin before taking everything is not an error (as
        with ssh), and the command's end is never held up by input still to come; the deadline covers sending too.
        `on_output` sees each chunk as it arrives (all of it: only what is kept is capped). A timeout or a lost
        connection raises `CommandCut` with the output that had arrived. `group_token`: the command line reports
        its process group with it (`run`); without `login_output` it also printed it alone on stdout first, and
        what came before it there is dropped. `channel_timeout`: how long its channel may take to open
        (default: the connection's channel timeout). A line longer than an SSH server takes is a UsageError, nothing
        sent (`quoting.check_command_line`: sshd would drop the connection).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        feed = as_feed(stdin)
        _refuse_too_long(command, feed)
        self.watch()  # a link that goes down under the command is noticed in seconds, not at its timeout
        out, err = self._output_streams(group_token, login_output, on_output)
        with self.commands.starting(feed):  # refused if interrupted before its `exec` request (ssh_interrupt.py)
            chan = self._command_channel(feed, channel_timeout)
            # factoryctl's own commands (not exec's: `login_output`) are killed if it is interrupted (node_leftovers.py)
            leftover = None if login_output else NODE_LEFTOVERS.add(lambda: self._kill_now(chan, err))
            late_kill = None if timeout is None or on_output is None else self._kill_when_late(chan, err, timeout)
            try:
                status = self._exec(chan, command, feed, out, err, deadline, timeout)
            finally:
                if late_kill is not None:
                    late_kill.cancel()
                if leftover is not None:
                    NODE_LEFTOVERS.discard(leftover)
                if feed is not None:
                    feed.close()
                self.commands.ended(chan)
                close_channel(chan)
        # paramiko reports -1 when the command died of a signal; OpenSSH's client exits 255 then.
        return command_result(255 if status < 0 else status, out, err)

    def _output_streams(
        self, group_token: str | None, login_output: bool, on_output: OutputSink | None
    ) -> tuple[CappedOutput, CommandStderr]:
        """A command's stdout and stderr, the group report cut out of them (`run_shell`'s `group_token`)."""
        limit = self.options.max_output_bytes
        out = CappedOutput(limit, 1, on_output)
        if group_token is not None and not login_output:
            out = CommandStdout(group_token, limit, on_output)
        return out, CommandStderr(group_token, limit, 2, on_output)

    def _command_channel(self, feed: Feed | None, timeout: float | None) -> paramiko.Channel:
        """A channel for one command; `feed` is closed if none opens."""
        try:
            return self.channel(timeout)
        except BaseException:
            if feed is not None:
                feed.close()
            raise

    def _exec(
        self,
        chan: paramiko.Channel,
        command: str,
        feed: Feed | None,
        out: CappedOutput,
        err: CommandStderr,
        deadline: float | None,
        timeout: float | None,
    ) -> int:
        """Start `command` on `chan`, feed it and drain its output into `out` and `err`; its exit status (-1: none).

        Past `deadline` (`timeout` s after the start) the command is killed (`_timed_out`) and a timeout `CommandCut`
        is raised; a lost connection raises one too. Either carries the output that had arrived. Once its exit status
        came, output that something it started holds open is read for a moment only (held_open.py), nothing killed.
        """
        import paramiko

        try:
            line = command.encode("utf-8", "surrogateescape")  # argv's bytes that are not UTF-8, as ssh sends them
            self.commands.start(chan, err, lambda: chan.exec_command(line))  # among the running ones once sent
            if feed is None:
                with operation(chan) as still_open:  # a quick command may be over, its channel closed, already
                    if still_open:
                        chan.shutdown_write()
            if not drain(chan, deadline, out, err, feed, until=chan.exit_status_ready):
                raise cut_short(self._timed_out(chan, out, err, timeout), out, err)
            self._read_after_exit(chan, out, err, feed, deadline, timeout)
            err.finish()
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
            if status < 0 and not self.transport.is_active():
                raise cut_short(self.lost("while the command ran"), out, err)
        except (OSError, EOFError, paramiko.SSHException) as exc:  # EOFError: gone mid-send; SSHException: the
            # channel closed under `exec_command` (the connection closing): a lost connection, never a raw exception
            err.finish()
            raise cut_short(self.lost("while the command ran", exc), out, err) from exc
        return status

    def _read_after_exit(
        self,
        chan: paramiko.Channel,
        out: CappedOutput,
        err: CommandStderr,
        feed: Feed | None,
        deadline: float | None,
        timeout: float | None,
    ) -> None:
        """Read the rest of an exited command's output: to its end, or for a moment if something it started holds it.

        Output not ended by the grace's end (held_open.py, no EOF from the node) is held open by what the command
        started, however fast that writes: the result says so and that process is left running (the channel is closed
        after), never killed as a timeout; Ctrl-C ends the grace at once. Output that did end but is still waiting (a
        `--lines` reader slow to take it) is read on to the deadline, as while the command ran.
        """
        if read_for_grace(lambda end: drain(chan, end, out, err, feed), deadline, lambda: self.commands.interrupted):
            return
        if not chan.eof_received:
            out.held_open = True
        elif not drain(chan, deadline, out, err, feed):
            raise cut_short(self._timed_out(chan, out, err, timeout), out, err)

    def _timed_out(
        self, chan: paramiko.Channel, out: CappedOutput, err: CommandStderr, timeout: float | None
    ) -> NodeError:
        """Kill a command past its timeout (its process group: `_signal`); the error says whether it ended.

        Bounded by STOP_TIMEOUT_S, what the command prints meanwhile included; one that has not ended by then (its
        group unknown, the connection gone, or a process that left the group holds its output open) may still run.
        Whether a process that left the group holds it open is asked only on a connection that answered the kill
        (`_signal`): on a silent one (the node's sshd stopped or hung) that question would only wait longer.
        """
        deadline = time.monotonic() + STOP_TIMEOUT_S
        if err.group is None and not self._signals_reach():  # its report may be on its way still
            drain(chan, deadline, out, err, until=lambda: err.group is not None)
        answered = self._signal(chan, err.group, ("KILL",), deadline)
        ended = drain(chan, deadline, out, err) and self.transport.is_active()
        err.finish()
        left = not ended and answered and err.group is not None and self._group_ended(err.group)
        return timeout_error(self.node, timeout, ended, err.group, self.target.user if left else None)

    def _group_ended(self, group: int) -> bool:
        """Whether nothing is left of process group `group` (and its session) on the node; False if unknown.

        Asked after the kill when the command's output is still held open: then by a process that escaped the group.
        Its channel, too, must open within STOP_TIMEOUT_S.
        """
        if not self.transport.is_active():
            return False
        try:
            probe = self.run_shell(group_ended_probe(group), timeout=STOP_TIMEOUT_S, channel_timeout=STOP_TIMEOUT_S)
        except NodeError:
            return False
        return GROUP_ENDED in probe.stdout.decode(errors="replace").split()

    def _signal(self, chan: paramiko.Channel, group: int | None, signals: Sequence[str], deadline: float) -> bool:
        """Send `signals` to a command, best effort (the connection may be gone); False if the node did not answer.

        As `signal` requests where sshd delivers them (`_signals_reach`) or the group is unknown (nothing comes back:
        True), else to its process group over another channel (`quoting.signal_group`), started by `deadline`;
        False when that channel did not open.
        """
        if group is None or self._signals_reach():
            for name in signals:
                send_signal(chan, name)
            return True
        import paramiko

        try:
            kill = self.channel(timeout=max(deadline - time.monotonic(), 0.01))
        except (NodeError, OSError, EOFError, paramiko.SSHException):
            return False
        with contextlib.suppress(NodeError, OSError, EOFError, paramiko.SSHException):
            try:
                kill.exec_command(signal_group(group, signals))
                kill.shutdown_write()
                # Its login shell runs the startup files first: closed before it ends, a shell whose `.bashrc` prints
                # dies writing to it, before `kill`. So it is drained (output dropped) until it ends, by `deadline`.
                drain(kill, max(deadline, time.monotonic() + 0.01), CappedOutput(0, 1), CappedOutput(0, 2))
            finally:
                close_channel(kill)
        return True

    def _kill_when_late(self, chan: paramiko.Channel, err: CommandStderr, timeout: float) -> threading.Timer:
        """A timer that kills the command should it still run SINK_STALL_S past its timeout (cancel it once over).

        The thread that reads a command's output also kills it past its deadline (`_exec`), but a sink may hold
        that thread up for as long as it likes (`--lines` to a reader that is not reading yet: `| (sleep 60; cat)`):
        the kill is not left waiting for it. `_timed_out` still says what became of the command once the sink lets
        go (its kill, sent again, finds the group gone).
        """

        def kill() -> None:
            if not chan.closed and not chan.exit_status_ready():
                self._signal(chan, err.group, ("KILL",), time.monotonic() + STOP_TIMEOUT_S)

        timer = threading.Timer(timeout + SINK_STALL_S, kill)
        timer.daemon = True
        timer.name = f"late-kill-{self.node}"
        timer.start()
        return timer

    def _kill_now(self, chan: paramiko.Channel, err: CommandStderr) -> None:
        """SIGKILL to a command its process gave up on (its process group where known), within STOP_TIMEOUT_S."""
        self._signal(chan, err.group, ("KILL",), time.monotonic() + STOP_TIMEOUT_S)
        close_channel(chan)

    def _signals_reach(self) -> bool:
        """Whether sshd delivers `signal` requests to this login's commands (`ssh_channel.signals_delivered`)."""
        return signals_delivered(self.transport.remote_version, self.target.user)


def _refuse_too_long(command: str, feed: Feed | None) -> None:
    """UsageError for a line longer than an SSH server takes (sshd would end the connection); `feed` closed then."""
    try:
        check_command_line(command)
    except UsageError:
        if feed is not None:
            feed.close()
        raise
