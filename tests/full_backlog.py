"""A local port that times a connect out: its listen backlog is full, so a new connection's SYN is dropped.

The one way to make a real TCP connect time out on 127.0.0.1 (a closed port refuses at once): tests of the connect
timeout's message and hint take their port from here.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def full_backlog_port() -> Iterator[int]:
    """A listening port on 127.0.0.1 whose backlog is full for as long as the context lasts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fill = []
    try:
        for _ in range(3):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # the handshake completes later, or never
                client.connect(("127.0.0.1", port))
            fill.append(client)
        yield port
    finally:
        for client in fill:
            client.close()
        listener.close()
