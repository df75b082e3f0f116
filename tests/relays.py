"""A TCP relay in front of the test sshd, for tests that watch or break the bytes between paramiko and the server.

Each accepted connection is forwarded to sshd by one thread per direction. Subclasses decide what happens to each
chunk (`forward`) and learn when a side hangs up (`hung_up_from`), so counting bytes and going silent (a network
partition) are a few lines each, and paramiko itself is never touched. The relay that goes silent (`SilencingRelay`),
a node behind one (`silencing_node`) and nodes behind a relayed jump host (`behind_relayed_jump`) were copied in
several test files, so they live here once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

#: Nodes `behind-*` go through ProxyJump `jumpy` (`behind_relayed_jump`), the jump host at the relay's port.
_BEHIND_JUMPY = (
    "Host behind-*\n  HostName 127.0.0.1\n  ProxyJump jumpy\n\n"
    "Host jumpy\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n"
)


class Relay:
    """Forwards every accepted connection to `127.0.0.1:upstream`, both ways, until `close`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def accept(self, client: socket.socket) -> None:
        """Connect to the upstream for `client` and start pumping both ways (the `listening` callback)."""
        server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        server.settimeout(None)
        self._sockets += [client, server]
        for source, sink, from_client in ((client, server, True), (server, client, False)):
            thread = threading.Thread(target=self._pump, args=(source, sink, from_client), daemon=True)
            self._threads.append(thread)
            thread.start()

    def forward(self, data: bytes, from_client: bool) -> bool:
        """Whether to pass `data` on (it came from the client when `from_client`); every byte, here."""
        return True

    def hung_up_from(self, from_client: bool) -> None:
        """One side closed its end (the client when `from_client`); the other side's write end is shut next."""

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if self.forward(data, from_client):
                    sink.sendall(data)
        self.hung_up_from(from_client)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Cut every relayed connection and wait for the pumps to end."""
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)
        for sock in self._sockets:
            sock.close()


@contextlib.contextmanager
def relayed_node(relay: Relay, sshd: Any, directory: Path, name: str) -> Iterator[Any]:
    """A NodeSpec `name` reaching the test `sshd` through `relay` (its host key trusted at the relay's port)."""
    from silent_listener import listening

    with listening(relay.accept) as port:
        known = replace(sshd, port=port).write_known_hosts(directory / "known_hosts")
        try:
            yield sshd.node(name, known, port=port)
        finally:
            relay.close()


class SilencingRelay(Relay):
    """Forwards to sshd until `silent` is set, then drops every byte both ways, sockets left open (a link down)."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.silent = threading.Event()

    def forward(self, data: bytes, from_client: bool) -> bool:
        return not self.silent.is_set()


@contextlib.contextmanager
def silencing_node(sshd: Any, directory: Path, name: str = "n1") -> Iterator[tuple[SilencingRelay, Any]]:
    """A `SilencingRelay` in front of `sshd` and the NodeSpec `name` reaching it through that relay.

    On the way out the relay flows again: what still waits on the relayed connections ends with the relay's close.
    """
    relay = SilencingRelay(sshd.port)
    with relayed_node(relay, sshd, directory, name) as node:
        try:
            yield relay, node
        finally:
            relay.silent.clear()


@contextlib.contextmanager
def behind_relayed_jump(relay: Relay, sshd: Any, jump_server: Any, directory: Path) -> Iterator[tuple[Path, Path, Any]]:
    """Nodes `behind-*` (the test `sshd`) reached through jump host `jumpy` (`jump_server`, behind `relay`).

    Yields the ssh_config that says so, the known_hosts that trusts both (the jump host at the relay's port), and
    the jump host's NodeSpec (its `port` is the relay's).
    """
    with relayed_node(relay, jump_server, directory, "jumpy") as jump_spec:
        config = directory / "ssh_config"
        config.write_text(_BEHIND_JUMPY.format(port=jump_spec.port, user=jump_server.user, key=jump_server.user_key))
        yield config, sshd.write_known_hosts(Path(jump_spec.known_hosts)), jump_spec
