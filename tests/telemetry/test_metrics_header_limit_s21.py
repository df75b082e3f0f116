"""`metrics serve` reads at most 32 KiB of a request's line and headers: past them a 431, and the connection closed.

Found by a review (session 21): http.server takes 100 header lines of 64 KiB each, and 64 connections each sending
99 of them made the exporter's RSS go from 47 MB to 816 MB, and stay at 520-640 MB afterwards. Real sockets, a real
server, the real limit.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from factoryctl.cli.metrics import metrics_handler
from factoryctl.cli.metrics_http import MAX_REQUEST_HEAD_BYTES, listen

#: The 431's first line; the answer closes the connection.
TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
OK = b"HTTP/1.0 200 OK\r\n"


class FixedText:
    """A source whose text is fixed: these tests are about the HTTP side, not about polling nodes."""

    def text(self, wait_s: float = 5.0) -> str:
        return "up 1\n"


@pytest.fixture
def port() -> Iterator[int]:
    """The port of a server answering as `metrics serve` does; shut down afterwards."""
    server = listen("127.0.0.1", 0, metrics_handler(FixedText()))  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def request_of(size: int) -> bytes:
    """A GET /metrics whose line and headers (the blank line ending them included) are `size` bytes."""
    start, end = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def answer_to(port: int, data: bytes) -> bytes:
    """Send `data` and read until the server closes the connection (it answers HTTP/1.0: one request each).

    A server still waiting for more after 30 s fails the test (the socket's timeout).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(data)
        received = b""
        while True:
            try:
                chunk = client.recv(65536)
            except ConnectionResetError:  # the close, with bytes of the request left unread
                return received
            if not chunk:
                return received
            received += chunk


def test_headers_past_the_limit_get_431_and_the_connection_is_closed(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """99 header lines of ~64 KiB were read whole, by each of 64 connections; now 32 KiB at most, then a 431."""
    answer = answer_to(port, request_of(MAX_REQUEST_HEAD_BYTES + 8000))
    assert answer.startswith(TOO_LARGE), answer[:200]
    assert b"Connection: close\r\n" in answer
    assert answer_to(port, request_of(1000)).startswith(OK)  # the others are served
    err = re.sub(r"127\.0\.0\.1:\d+;", "127.0.0.1:<port>;", capsys.readouterr().err)  # the client's port
    assert err == (
        f"factoryctl: metrics: refused 1 request with 431, request line and headers over {MAX_REQUEST_HEAD_BYTES} "
        "bytes (the last from 127.0.0.1:<port>; said at most once a minute)\n"
    )


def test_a_header_line_never_ended_gets_431_at_the_limit(port: int) -> None:
    """One header line of 40 KB, its end never sent: the server waited for its end until the request's deadline."""
    data = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_REQUEST_HEAD_BYTES + 8000)
    answer = answer_to(port, data)
    assert answer.startswith(TOO_LARGE), answer[:200]


def test_a_request_line_past_the_limit_gets_431(port: int) -> None:
    data = b"GET /metrics?" + b"a" * (MAX_REQUEST_HEAD_BYTES + 8000) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = answer_to(port, data)
    assert answer.startswith(TOO_LARGE), answer[:200]


def test_the_limit_is_exact(port: int) -> None:
    """A request line and headers of exactly the limit are served; one byte more is refused."""
    assert answer_to(port, request_of(MAX_REQUEST_HEAD_BYTES)).startswith(OK)
    assert answer_to(port, request_of(MAX_REQUEST_HEAD_BYTES + 1)).startswith(TOO_LARGE)


def test_refusals_are_said_at_most_once_a_minute(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        assert answer_to(port, request_of(MAX_REQUEST_HEAD_BYTES + 1)).startswith(TOO_LARGE)
    assert capsys.readouterr().err.count("\n") == 1


def check_many(port: int, count: int, check: Callable[[int], Any]) -> None:
    """`check(port)` from `count` clients at once."""
    failures: list[BaseException] = []

    def one() -> None:
        try:
            check(port)
        except BaseException as exc:
            failures.append(exc)

    clients = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)
    assert not failures, failures[0]


def test_many_large_requests_at_once_are_all_refused_and_scrapes_still_served(port: int) -> None:
    def refused(port: int) -> None:
        answer = answer_to(port, request_of(MAX_REQUEST_HEAD_BYTES + 30000))
        assert answer.startswith(TOO_LARGE), answer[:200]

    check_many(port, 20, refused)
    assert answer_to(port, request_of(1000)).startswith(OK)
