"""A TCP listener that accepts connections and never says a word: a node whose sshd hangs before its banner.

Every accepted socket is kept open while the test runs, and on exit the accept thread is woken (shutdown, not just
close: a close does not wake a thread blocked in accept on Linux), joined, and every socket closed. A thread left
blocked in accept used to return during a later test and drop its sockets there, failing that test with an
unraisable ResourceWarning.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def listening(on_accept: Callable[[socket.socket], None]) -> Iterator[int]:
    """Listen on 127.0.0.1, hand each accepted socket to `on_accept`, yield the port; end the thread on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def accept_forever() -> None:
        with contextlib.suppress(OSError):
            while True:
                on_accept(listener.accept()[0])

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=10)
        listener.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """Listen on 127.0.0.1, yield the port, and clean up every socket and the thread on exit."""
    held: list[socket.socket] = []
    try:
        with listening(held.append) as port:
            yield port
    finally:
        for sock in held:
            sock.close()
