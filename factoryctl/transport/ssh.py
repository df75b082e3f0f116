"""Persistent SSH connections to nodes (paramiko), with every step bounded in time and every failure classified.

One `SshConnection` per node, on a TCP socket this module creates with TCP_NODELAY (paramiko leaves Nagle on, which
costs tens of milliseconds per small request). Connect, banner, handshake, auth and channel opens all have timeouts;
keepalives run on the transport and the liveness watch (`watch`: a real round trip every keepalive interval, from
the first command or agent on) closes a connection that stops answering, so a dead peer is noticed. The connect
steps (TCP, handshake, host key against known_hosts before any credential, auth) live in `ssh_handshake.py`.
Running commands on it (`run`, `run_shell`: argv joined with `quoting.shell_join`, stdout and stderr drained
together, the kill past a timeout) lives in `ssh_commands.py`, mixed into `SshConnection`. What is sent on a channel
goes through `ssh_channel.operation`, so it never follows our CLOSE (OpenSSH would drop the connection shared by every
command); so does what a node's transport sends on its jump host's tunnel (`ssh_channel.as_tunnel`).
`SshPool` (ssh_pool.py) keeps one connection per node and shares ProxyJump hosts.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError
from factoryctl.transport.ssh_channel import as_tunnel, guard
from factoryctl.transport.ssh_commands import STOP_TIMEOUT_S, RunsCommands
from factoryctl.transport.ssh_config import SshTarget
from factoryctl.transport.ssh_handshake import (
    ServerKey,
    SshOptions,
    authenticate,
    read_known_hosts,
    start_transport,
    tcp_socket,
    verify_host_key,
)
from factoryctl.transport.ssh_idle import close_transport, settle
from factoryctl.transport.ssh_interrupt import CommandInterrupts
from factoryctl.transport.ssh_lost import SERVING, lost_connection, silent_jump
from factoryctl.transport.ssh_watch import WATCH, WatchedConnection

__all__ = [
    "QUIET_LOGIN_HINT",
    "STOP_TIMEOUT_S",
    "ServerKey",
    "SshConnection",
    "SshOptions",
    "lost_connection",
    "open_ssh_transport",
]

if TYPE_CHECKING:
    import paramiko

    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.ssh_node import SshTransport


#: The hint for an answer of the node that cannot be read (`id -u`, Python's version): a login shell that prints.
QUIET_LOGIN_HINT = (
    "if the login shell's startup files print text (`echo` in ~/.bashrc), print it only in interactive shells "
    "(after `[[ $- == *i* ]] || return`) or on stderr."
)


class SshConnection(RunsCommands):
    """One authenticated SSH connection to a node; channels are opened on it per command or agent.

    Its commands (`run`, `run_shell`, their kill past a timeout) are written in ssh_commands.py.
    """

    def __init__(self, node: str, target: SshTarget, transport: paramiko.Transport, options: SshOptions) -> None:
        self.node = node
        self.target = target
        self.transport = transport
        self.options = options
        self.host_key: ServerKey | None = None
        self._watched: WatchedConnection | None = None
        #: How long a round trip went unanswered before the connection was given up on as silent (None: it was not).
        self.silent_for: float | None = None
        #: The connection to its jump host (ProxyJump) it was opened through: one gone silent is why this one was lost.
        self.via: SshConnection | None = None
        #: Its commands starting and running, and whether it was interrupted (ssh_interrupt.py).
        self.commands = CommandInterrupts(node, self._signals_reach, self._signal, self.is_alive)

    @classmethod
    def open(cls, node: str, target: SshTarget, options: SshOptions, via: SshConnection | None = None) -> SshConnection:
        """Connect (directly, or through `via` with a direct-tcpip channel), verify the host key, authenticate."""
        sock: socket.socket | paramiko.Channel
        timeout = options.connect_timeout_s
        SERVING.opening(node)
        sock = tcp_socket(node, target, timeout) if via is None else via.tunnel(target, timeout)
        known = read_known_hosts(target)
        transport = start_transport(node, target, sock, options, known)
        try:
            found = verify_host_key(node, transport, target, known)
            authenticate(node, transport, target)
        except (EOFError, ConnectionError) as exc:  # the connection (or its jump host's) went away meanwhile:
            # paramiko's empty EOFError, or the socket's error (a reset) it kept and raised from the step that waited
            close_transport(transport)
            raise lost_connection(node, f"to {target.label}", jump=target.jump, silent_jump=silent_jump(via)) from exc
        except BaseException:  # refused, or this machine out of files while it read a key: never left open
            close_transport(transport)
            raise
        settle(transport)  # see ssh_idle.py: its thread wakes once a second from now on, not ten times
        connection = cls(node, target, transport, options)
        connection.host_key, connection.via = found, via
        return connection

    def tunnel(self, target: SshTarget, timeout: float | None = None) -> paramiko.Channel:
        """A direct-tcpip channel to `target` through this connection (ProxyJump), opened within `timeout`."""
        import paramiko

        try:
            chan = self.transport.open_channel(
                "direct-tcpip",
                (target.host, target.port),
                ("127.0.0.1", 0),
                timeout=self.options.connect_timeout_s if timeout is None else timeout,
            )
        except paramiko.ChannelException as exc:
            raise NodeError(
                self.node,
                "refused",
                f"jump host {self.target.label} cannot reach {target.address} ({exc.text})",
                "check ProxyJump in ~/.ssh/config and the node's address.",
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise lost_connection(self.node, f"to jump host {self.target.label}", exc) from exc
        return as_tunnel(chan)  # see ssh_channel.py: one tunnel's late message would drop the jump connection

    def lost(self, what: str, cause: BaseException | None = None) -> NodeError:
        """The error of this connection lost `what` (`lost_connection`: said as silent if it, or its jump host, went so)."""
        return lost_connection(self.node, what, cause, self.target.jump, self.silent_for, silent_jump(self.via))

    def channel(self, timeout: float | None = None) -> paramiko.Channel:
        """A new session channel, opened within `timeout` (default: the channel timeout)."""
        import paramiko

        if not self.transport.is_active():
            raise self.lost(f"to {self.target.label}")
        allowed, started = timeout or self.options.channel_timeout_s, time.monotonic()
        try:
            chan = self.transport.open_session(timeout=allowed)
        except paramiko.ChannelException as exc:
            raise NodeError(self.node, "agent", f"{self.target.label} refused a session: {exc.text}") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            waited = time.monotonic() - started  # a quick failure is no silence, whatever `allowed` was
            if self.transport.is_active() and waited >= self.answer_bound():  # unanswered as the watch's check
                self._mute(allowed)
            raise self.lost(f"to {self.target.label}", exc) from exc
        guard(chan)  # see ssh_channel.py: what we send on it can never follow our CLOSE
        SERVING.serves(self.node, self)  # the fan-out asks it how it ended, should a bare EOFError reach it
        chan.settimeout(self.options.channel_timeout_s)
        return chan

    def is_alive(self, timeout: float | None = None) -> bool:
        """A real round trip (open and close a channel), so a silently dead peer is noticed."""
        import paramiko

        if not self.transport.is_active():
            return False
        try:
            chan = self.transport.open_session(timeout=timeout or self.options.channel_timeout_s)
        except paramiko.ChannelException:
            return True  # the server answered, refusing one more session (MaxSessions): busy, not dead
        except Exception:
            return False
        chan.close()
        return True

    def known_dead(self, unanswered_s: float) -> bool:
        """Whether nothing can cross this connection any more (an agent's teardown then skips what would wait).

        Its transport is down, or the liveness check under way has had no answer for `unanswered_s`: a silent peer,
        known before that check's own timeout closes the connection.
        """
        watched = self._watched
        stalled = watched is not None and watched.unanswered_for() >= unanswered_s
        return stalled or not self.transport.is_active()

    def answer_bound(self) -> float:
        """How long a liveness check may go unanswered before the connection is given up on as silent.

        A keepalive interval, or ssh.connect_timeout_s if longer, never past the channel timeout (not --timeout: a
        command of hours on a dead link waited all of it); a shorter outage is ridden out (TCP delivers it late).
        """
        options = self.options
        return min(options.channel_timeout_s, max(options.keepalive_s, options.connect_timeout_s))

    def watch(self, interval: float | None = None, timeout: float | None = None) -> None:
        """Check liveness every `interval` in the background; a peer that stops answering gets the connection closed.

        Keepalives never fail on a silently dead peer, so a command or agent on a link that went down waited out its
        whole timeout: a check not answered within `timeout` (`answer_bound`) closes the transport, ending its
        channels, and what ran on them says the connection was lost (`silent_for`). One watch serves every
        connection (ssh_watch.py), from its first command (`run_shell`) or agent on.
        """
        if self._watched is not None:
            return
        limit = timeout or self.answer_bound()
        every = interval or self.options.keepalive_s
        self._watched = WATCH.add(
            f"ssh-watch-{self.node}", every, lambda: self.is_alive(limit), lambda: self._mute(limit)
        )

    def answers(self, within: float) -> bool:
        """Whether a round trip is answered within `within` (a watch check under way: its own bound); if not, `_mute`."""
        if not self.transport.is_active():
            return False
        if not self.known_dead(self.answer_bound()) and self.is_alive(within):
            return True
        self._mute(within)
        return False

    def _mute(self, unanswered_s: float) -> None:
        """Close a connection whose round trip went unanswered for `unanswered_s` (the watch's `on_dead`)."""
        if self.transport.is_active():
            self.silent_for = unanswered_s
        close_transport(self.transport)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT, then SIGHUP, to every command on this connection; one not started yet is refused.

        Never waits for the node (see ssh_interrupt.py). A command that ignores both (nohup) keeps running. The
        channels stay open: each `run` goes on until its command ends (its result then says how: 255 if by a signal)
        or its timeout, so that a command still running when the caller stops waiting is known to be (and not taken
        as ended because its channel was closed).
        """
        self.commands.interrupt()

    def close(self) -> None:
        """Close the transport (and with it every channel), and stop the liveness watch at once."""
        checking = None if self._watched is None else WATCH.remove(self._watched)
        SERVING.closing(self.node, self)  # closed while up: it has no loss to tell of
        close_transport(self.transport)  # which ends a check under way
        if checking is not None and checking is not threading.current_thread():
            checking.join(self.options.channel_timeout_s)


def open_ssh_transport(node: NodeSpec, config: FactoryConfig, timeout: float) -> SshTransport:
    """The NodeTransport of an SSH node (connected and authenticated); see transport/ssh_node.py."""
    from factoryctl.transport.ssh_node import open_ssh_transport as open_transport

    return open_transport(node, config, timeout)
