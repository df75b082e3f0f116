"""`SshPool`: one persistent SSH connection per node, with ProxyJump hosts shared.

Kept apart from ssh.py (one connection: opening it, running commands on it) because the pool is about many: which
connection a node gets, when a dead one is re-opened, and how nodes that need a connection while it is being opened
(a jump host shared by a sweep's nodes) share that attempt's outcome instead of each paying a connect timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_config import SshTarget, resolve
from factoryctl.transport.ssh_handshake import SshOptions

__all__ = ["SshPool"]


class _Attempt:
    """One connection attempt in progress: nodes that need the same connection meanwhile wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.connection: SshConnection | None = None
        self.error: BaseException | None = None

    def outcome(self, node: str) -> SshConnection:
        """The connection, or the attempt's failure told as `node`'s own (after waiting for the attempt to end).

        No timeout is needed here: every step of the attempt is bounded, and it always ends by setting `done`.
        """
        self.done.wait()
        if isinstance(self.error, NodeError) and self.error.node != node:
            error = self.error
            raise NodeError(node, error.kind, error.message, error.hint) from error
        if self.error is not None:
            raise self.error
        assert self.connection is not None
        return self.connection


@dataclass
class SshPool:
    """One persistent connection per node (and per jump host, watched: `_watched`), reopened once found dead.

    Nodes that need a connection while it is being opened (a jump host shared by a sweep's nodes) share the outcome
    of that attempt: a jump host that does not answer costs one connect timeout, not one per node in turn.
    """

    options: SshOptions = field(default_factory=SshOptions)
    _connections: dict[tuple[str, ...], SshConnection] = field(default_factory=dict)
    _attempts: dict[tuple[str, ...], _Attempt] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def target(self, spec: NodeSpec) -> SshTarget:
        """The resolved endpoint of a node (factory.yaml merged with ~/.ssh/config)."""
        return resolve(spec, self.options.ssh_config)

    def connect(self, spec: NodeSpec, check_alive: bool = False) -> SshConnection:
        """The node's connection, opened on first use (and re-opened when dead)."""
        return self._connect(spec.name, self.target(spec), ("node", spec.name), check_alive, self.options)

    def _connect(
        self, node: str, target: SshTarget, key: tuple[str, ...], check_alive: bool, options: SshOptions
    ) -> SshConnection:
        # Nodes get a connection each (several inventory nodes may share one sshd); jump hosts are shared.
        with self._guard:
            running = self._attempts.get(key)
            if running is None:
                attempt = self._attempts[key] = _Attempt()
        if running is not None:
            return running.outcome(node)
        try:
            attempt.connection = self._reuse_or_open(node, target, key, check_alive, options)
        except BaseException as exc:
            attempt.error = exc
            raise
        finally:
            with self._guard:
                del self._attempts[key]
            attempt.done.set()
        return attempt.connection

    def _reuse_or_open(
        self, node: str, target: SshTarget, key: tuple[str, ...], check_alive: bool, options: SshOptions
    ) -> SshConnection:
        existing = self._connections.get(key)
        if existing is not None:
            alive = existing.is_alive() if check_alive else existing.transport.is_active()
            if alive:
                return existing
            existing.close()
            del self._connections[key]
        via = None if target.jump is None else self.jump(node, target.jump, options)
        connection = SshConnection.open(node, target, options, via)
        if key[0] == "jump":
            _watched(connection)
        self._connections[key] = connection
        return connection

    def jump(self, node: str, target: SshTarget, options: SshOptions | None = None) -> SshConnection:
        """The shared connection to a jump host (opened on first use and watched: `_watched`; re-opened once dead).

        `options` (the caller's timeouts; the pool's by default) bound the connection when it has to be opened.
        """
        try:
            return self._connect(node, target, _jump_key(target), False, options or self.options)
        except NodeError as exc:
            if exc.message.startswith("jump host "):
                raise
            raise NodeError(
                node, exc.kind, f"jump host {target.label}: {exc.message}", _jump_hint(exc, target)
            ) from exc

    def drop(self, spec: NodeSpec) -> None:
        """Close and forget a node's connection (after an error that left it unusable)."""
        connection = self._connections.pop(("node", spec.name), None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close every connection."""
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()


def _jump_hint(exc: NodeError, target: SshTarget) -> str | None:
    """The hint for a failure to reach jump host `target`: about the jump host (ProxyJump), not about the node."""
    where = f"the jump host {target.address} (ProxyJump in ~/.ssh/config)"
    if exc.kind == "host_key":
        return (
            f"check the jump host's fingerprint out of band, then record it with `factoryctl nodes trust {exc.node}` "
            f"(it shows the jump host's key first; with --replace if the message says so), or with "
            f"`ssh -o UserKnownHostsFile={target.known_hosts} -p {target.port} {target.user}@{target.host}` once."
        )
    if exc.kind == "dns":
        return f"check the jump host's name {target.host} in ProxyJump in ~/.ssh/config."
    if exc.kind == "refused":
        return f"is sshd running on {where}?"
    if exc.kind == "timeout":
        return f"is {where} up and reachable from here?"
    if exc.kind == "banner":  # silent, or not SSH: the handshake's hints speak of the node's sshd
        return (
            f"check that port {target.port} of {where} is sshd's and that sshd there is not stopped, hung or "
            "overloaded; a middlebox may also hold the connection."
        )
    return exc.hint


def _watched(jump: SshConnection) -> None:
    """Watch a jump host's connection from its opening on, as a node's is from its first command (ssh_watch.py).

    It is shared, and used by nothing but the tunnels of the nodes behind it, so no command of its own starts the
    watch: unwatched, a jump connection whose link went down stayed `is_active()` (TCP retransmits for many minutes),
    and every reconnect of a node behind it tunnelled into it again and was lost, until the process restarted (a
    controller or a dashboard never got those nodes back). Watched, a check left unanswered closes it, and the next
    `connect` through it opens a new one. A watch that cannot start (no thread left) leaves nothing open.
    """
    try:
        jump.watch()
    except BaseException:
        jump.close()
        raise


def _jump_key(target: SshTarget) -> tuple[str, ...]:
    return ("jump", *map(str, target.key))
