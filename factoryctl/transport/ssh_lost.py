"""The one error of an SSH connection that died under a command or an agent, worded by how it died.

Kept apart from ssh.py (which opens connections and runs commands on them) so that every module that meets a lost
connection (ssh.py, ssh_node.py, smi.py, the fan-out) says it alike. A connection the node's side closed or reset is
`connection lost ...`; one that went silent (the link went down: packets vanish, nothing is closed, and TCP alone
would retransmit for many minutes) is found by the liveness watch (ssh_watch.py) or a bounded round trip, and its
message says the link stopped answering, so its hint (hints.py) is about the network path rather than sshd. A node
behind a jump host whose jump connection went silent says that jump host's link stopped answering, not its own.

A step that lets paramiko's bare `EOFError` through (one waiting on a connection already gone) leaves the fan-out to
word it: the fan-out knows only the node's name, so each connection that works for a node says so (`SERVING`), and
`lost_under` asks that connection how it ended, as the steps that catch the error do.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Protocol

from factoryctl.errors import NodeError
from factoryctl.transport.hints import LOST_HINT, SILENT_LINK, SILENT_LINK_HINT, THROUGH_JUMP, lost_jump_hint
from factoryctl.transport.host_limits import local_limit_error
from factoryctl.transport.ssh_config import SshTarget


@dataclass(frozen=True)
class SilentJump:
    """A node's jump host whose connection went silent (was given up on) before the node's: its label, its silence."""

    label: str
    silent_s: float

    def said(self, hops: list[str]) -> str:
        """How a lost connection's sentence goes on, after the jump hosts `hops` (one of one is not named twice)."""
        which = "the jump host" if hops == [self.label] else f"jump host {self.label}"
        return f"the link to {which} stopped answering (no answer within {self.silent_s:g} s)"


def lost_connection(
    node: str,
    what: str,
    cause: BaseException | None = None,
    jump: SshTarget | None = None,
    silent_s: float | None = None,
    silent_jump: SilentJump | None = None,
) -> NodeError:
    """The error of a connection that died under a command or an agent (`refused`: the node's side went away).

    Unless `cause` is this machine's limit (no file descriptor left for the pipe paramiko makes to wait on a
    channel, no thread): that is the `local` error, not the node's fault. A node reached through `jump` (its
    ProxyJump) may have been lost with its jump host: both are named, the jump hosts outermost first. `silent_s`:
    the connection was given up on because nothing came back on it for that long (a link that went down).
    `silent_jump`: the connection to one of those jump hosts had gone silent first, which is then what the sentence
    says (not the node's link). One closed first is not told apart from the node's own loss: both are named.
    """
    local = None if cause is None else local_limit_error(node, cause)
    if local is not None:
        return local
    silent = "" if silent_s is None else f": {SILENT_LINK} (no answer within {silent_s:g} s)"
    if jump is None:
        return NodeError(
            node, "refused", f"connection lost {what}{silent}", LOST_HINT if not silent else SILENT_LINK_HINT
        )
    hops: list[str] = []
    hop: SshTarget | None = jump
    while hop is not None:
        hops.insert(0, hop.label)
        hop = hop.jump
    plural = "s" * (len(hops) > 1)
    why = silent if silent_jump is None else f": {silent_jump.said(hops)}"
    said = f"connection lost {what} ({THROUGH_JUMP}{plural} {', '.join(hops)}){why}"
    return NodeError(node, "refused", said, lost_jump_hint(hops))


class _Transport(Protocol):
    def is_active(self) -> bool: ...


class Ending(Protocol):
    """What a connection tells of how it ended (ssh.py's SshConnection)."""

    @property
    def transport(self) -> _Transport:
        """Its paramiko transport."""

    @property
    def target(self) -> SshTarget:
        """Where it goes."""

    @property
    def silent_for(self) -> float | None:
        """How long its round trip went unanswered before it was given up on as silent (None: it was not)."""

    @property
    def via(self) -> Ending | None:
        """The connection to its jump host it was opened through (None: direct)."""

    def lost(self, what: str, cause: BaseException | None = None) -> NodeError:
        """The error of this connection lost `what`."""


def _ended(connection: Ending | None) -> bool:
    """Whether `connection`, or one of the jump hosts' it goes through, has ended."""
    while connection is not None:
        if not connection.transport.is_active():
            return True
        connection = connection.via
    return False


def silent_jump(via: Ending | None) -> SilentJump | None:
    """The outermost of a connection's jump hosts (`via`, its ProxyJump's connection) given up on as silent, if any.

    Outermost: a jump connection that ends closes the tunnels of the hops inside it, which then end too. A silent
    jump host's nodes lose their connections with it, and may have given up on them first (their round trips cross
    its link): its silence is then what is said, not theirs.
    """
    hops: list[Ending] = []
    while via is not None:
        hops.insert(0, via)
        via = via.via
    for hop in hops:
        if not hop.transport.is_active():
            silent_s = hop.silent_for
            return None if silent_s is None else SilentJump(hop.target.label, silent_s)
    return None


class ServingConnections:
    """The connection each node's work last used, for the thread doing that work (held weakly).

    Kept per thread: the thread that meets the error (a fan-out's worker, a controller's link) is the one whose work
    opened the node's channels, and a fan-out's workers are new threads, so a connection of an earlier run that
    ended is never taken for this one's. Weakly: the pool that opened it keeps it, or the error's own frames do.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _mine(self) -> dict[str, weakref.ref[Ending]]:
        mine: dict[str, weakref.ref[Ending]] | None = getattr(self._local, "serving", None)
        if mine is None:
            mine = self._local.serving = {}
        return mine

    def serves(self, node: str, connection: Ending) -> None:
        """`connection` works for `node` now (a channel was opened on it for the node's command or agent)."""
        self._mine()[node] = weakref.ref(connection)

    def opening(self, node: str) -> None:
        """A connection is being opened for `node`: one of its that has ended no longer tells how the node fares."""
        known = self.serving(node)
        if known is not None and not known.transport.is_active():
            del self._mine()[node]

    def closing(self, node: str, connection: Ending) -> None:
        """`connection` is closed by its owner: forgotten if it and its jump hosts' were still up (nothing was lost).

        A jump connection that ended may not have ended the node's yet (its thread has still to read the tunnel's
        end), though a step of the node's work already met it.
        """
        if self.serving(node) is connection and not _ended(connection):
            del self._mine()[node]

    def serving(self, node: str) -> Ending | None:
        """The connection that last worked for `node` on this thread, if it is still known."""
        ref = self._mine().get(node)
        return None if ref is None else ref()


#: The process's connections by node (ssh.py's SshConnection says when it serves one).
SERVING = ServingConnections()


def lost_under(node: str, exc: BaseException) -> NodeError | None:
    """The lost connection that `exc`, met by a step that did not classify it, stands for on `node`; None if not one.

    paramiko's bare `EOFError` is always one. Its `SSHException` too (`Channel closed.`, `Unable to open channel.`)
    once the node's connection has ended: paramiko hands the reason its connection died to the first waiter that asks
    (a liveness check, often), and every other waiter gets these words instead. Worded by that connection as its own
    steps word it (silent, or through its jump hosts); when it has nothing more to tell (or none is known to serve the
    node on this thread), the bare `connection lost to NODE`.
    """
    connection = SERVING.serving(node)
    if isinstance(exc, EOFError) and not str(exc):
        if connection is None or (connection.silent_for is None and connection.target.jump is None):
            return lost_connection(node, f"to {node}")  # nothing more to tell
        return _lost(connection)
    if connection is None or connection.transport.is_active() or not _is_paramikos(exc):
        return None
    return _lost(connection)


def _lost(connection: Ending) -> NodeError:
    return connection.lost(f"to {connection.target.label}")


def _is_paramikos(exc: BaseException) -> bool:
    """Whether `exc` is paramiko's SSHException (or a subclass): paramiko is imported only once an SSH node failed."""
    import paramiko

    return isinstance(exc, paramiko.SSHException)
