"""A TCP relay in front of the test sshd, for tests that watch or break the bytes between paramiko and the server.

Each accepted connection is forwarded to sshd by one thread per direction. Subclasses decide what happens to each
chunk (`forward`) and learn when a side hangs up (`hung_up_from`), so counting bytes and going silent (a network
partition) are a few lines each, and paramiko itself is never touched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any


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
