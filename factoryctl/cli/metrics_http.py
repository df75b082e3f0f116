"""The HTTP side of `metrics serve`: the request handler, the listening server and the limits that keep it answering.

A scraper must not be able to hold the exporter. Python's `http.server` gives a thread to every connection for as
long as the client keeps sending a byte before each idle timeout (one header byte every 5 s held a thread for ever:
150 such clients held 152 threads), listens with a backlog of 5 (20 parallel scrapers waited up to 5 s for their
connect, the kernel dropping their SYNs) and has no bound on its threads. Here each request must arrive whole within
`REQUEST_DEADLINE_S`, each answer be taken within `RESPONSE_DEADLINE_S`, at most `MAX_HANDLER_THREADS` connections are
answered at once (the next get a quick 503) and the backlog is `LISTEN_BACKLOG`. http.server also reads 100 header
lines of 64 KiB each (64 connections sending them took the RSS from 47 MB to 816 MB, and it stayed over 500 MB): a
request's line and headers may take `MAX_REQUEST_HEAD_BYTES`, past them a 431 and the connection closed.

Imported only by `metrics serve` (http.server costs 25 ms of every CLI start).
"""

from __future__ import annotations

import contextlib
import errno
import io
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from factoryctl.cli import context
from factoryctl.cli.metrics import ADDRESS_HINT, DEFAULT_SCRAPE_WAIT_S, url_host
from factoryctl.stale_code import StaleCodeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import ReadableBuffer, WriteableBuffer

#: Connections waiting to be accepted (listen(2)'s backlog; the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 128
#: Connections answered at once, a thread each; past them a new connection gets a 503 at once and is closed.
MAX_HANDLER_THREADS = 64
#: Seconds from a connection's accept (or the end of its previous answer) to the end of its request's headers.
REQUEST_DEADLINE_S = 10.0
#: Seconds a client has to take a whole answer, from its first byte sent (a scraper reading 100 bytes a second).
RESPONSE_DEADLINE_S = 30.0
#: Bytes of a request's line and headers (their blank line included) at most; Prometheus sends less than 1 KiB.
MAX_REQUEST_HEAD_BYTES = 32 * 1024
#: Seconds, and bytes, a refused request is still read for after its 431: closing with bytes unread would reset the
#: connection, and the client's kernel would drop the 431 unread.
LINGER_S, LINGER_MAX_BYTES = 1.0, 1 << 20
#: Seconds between two notes on stderr of the same refusal (a 503 for want of a free thread, a 431).
NOTE_EVERY_S = 60.0

#: The scraper's deadline (Prometheus sends it with every scrape), in seconds; a scrape answers within it.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
#: Seconds of the scraper's deadline kept for reading the store, rendering and sending (at most a quarter of it).
SCRAPE_MARGIN_S = 1.0

#: The methods every page takes (`Allow` of a 405 to the others).
ALLOWED_METHODS = "GET, HEAD"

#: GET / (exporters' custom): where the metrics are, for whoever opens the address in a browser.
LANDING_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>factoryctl metrics</title></head><body>"
    b'<h1>factoryctl metrics</h1><p><a href="/metrics">/metrics</a></p></body></html>\n'
)
_BUSY_BODY = b"metrics serve is answering as many requests as it takes; try again\n"
#: The answer to a connection past `MAX_HANDLER_THREADS`, sent without a thread (it fits any socket's buffer).
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n"
) + _BUSY_BODY
_TOO_LARGE_BODY = f"the request line and headers are over {MAX_REQUEST_HEAD_BYTES} bytes\n".encode()
#: The answer to a request whose line and headers are over `MAX_REQUEST_HEAD_BYTES`.
TOO_LARGE_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n\r\n"
) + _TOO_LARGE_BODY


class TextSource(Protocol):
    """What the handler serves: the exposition text, waiting at most `wait_s` for the nodes (`MetricsSource`)."""

    def text(self, wait_s: float = ...) -> str:
        """The /metrics body."""
        ...


def scrape_wait(deadline: str | None) -> float:
    """Seconds to wait for the nodes, from the scraper's deadline header (`DEFAULT_SCRAPE_WAIT_S` without one)."""
    import math

    try:
        seconds = float(deadline) if deadline is not None else math.nan
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= context.MAX_TIMEOUT_S:  # NaN, inf, 0 and negative values are no deadline
        return DEFAULT_SCRAPE_WAIT_S
    return seconds - min(SCRAPE_MARGIN_S, seconds / 4)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (Prometheus always asks for it); `gzip;q=0` refuses it."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            name, _, weight = params.partition("=")
            if name.strip().lower() != "q":
                return True
            try:
                return float(weight) > 0
            except ValueError:
                return False
    return False


def encoded_body(body: bytes, accept_encoding: str | None) -> tuple[bytes, list[tuple[str, str]]]:
    """`body` as the client takes it (gzip when its Accept-Encoding says so), and the headers that say how."""
    headers = [("Vary", "Accept-Encoding")]
    if accepts_gzip(accept_encoding):
        import gzip

        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    return body, headers


class RequestTooLarge(Exception):
    """A request whose line and headers go on past `MAX_REQUEST_HEAD_BYTES`, raised as it would be read further.

    Neither an OSError nor an HTTPException: http.server takes those for a client gone, or answers them itself.
    """


class _Limits:
    """A connection's limits on its current request: its deadlines, and the bytes of it still to be read.

    The deadlines (monotonic) are for reading it and for sending its answer (once begun); the bytes are those of its
    line and headers (nothing here reads a body).
    """

    def __init__(self) -> None:
        self.read_by = 0.0
        self.write_by: float | None = None
        self.bytes_left = 0

    def start_request(self) -> None:
        self.read_by, self.write_by = time.monotonic() + REQUEST_DEADLINE_S, None
        self.bytes_left = MAX_REQUEST_HEAD_BYTES


class _DeadlineReader(io.RawIOBase):
    """The socket read under the request's limits: its deadline, and the bytes it may take (`RequestTooLarge` past them).

    Each read waits at most what is left of the deadline (or the idle time): the socket's own timeout is per read, and
    a client sending a byte just before each one kept its thread for ever. A read is wanted only while the request's
    headers have not ended, so the bytes read are those of its line and headers (and perhaps of the next request's,
    which only leaves that one more room).
    """

    def __init__(self, sock: socket.socket, limits: _Limits, idle_s: float | None) -> None:
        super().__init__()
        self._sock, self._limits, self._idle_s = sock, limits, idle_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        limits = self._limits
        if limits.bytes_left <= 0:
            raise RequestTooLarge(f"the request line and headers are over {MAX_REQUEST_HEAD_BYTES} bytes")
        left = limits.read_by - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left if self._idle_s is None else min(left, self._idle_s))
        with memoryview(buffer) as view:
            read = self._sock.recv_into(view, min(view.nbytes, limits.bytes_left))
        limits.bytes_left -= read
        return read

    def fileno(self) -> int:
        return self._sock.fileno()


class _DeadlineWriter(io.BufferedIOBase):
    """The answer sent under its deadline: `sendall`'s timeout bounds a whole send, and it is what is left of it."""

    def __init__(self, sock: socket.socket, limits: _Limits) -> None:
        super().__init__()
        self._sock, self._limits = sock, limits

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        limits = self._limits
        if limits.write_by is None:
            limits.write_by = time.monotonic() + RESPONSE_DEADLINE_S
        left = limits.write_by - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer was not taken in time")
        self._sock.settimeout(left)
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


class MetricsRequestHandler(BaseHTTPRequestHandler):
    """/metrics (GET and HEAD, gzip when asked), a landing page at /, 404 elsewhere; 503 when there is no text.

    500 once factoryctl's own files changed under the process (`StaleCodeError`): only a restart mends it.

    A request must arrive within `REQUEST_DEADLINE_S` and its answer be taken within `RESPONSE_DEADLINE_S`, else the
    connection is closed; one whose line and headers go past `MAX_REQUEST_HEAD_BYTES` gets a 431 and the connection
    is closed. Other methods get a 405 (`_not_allowed`). `serving` makes the class for one source.
    """

    source: ClassVar[TextSource]

    @classmethod
    def serving(cls, source: TextSource, idle_timeout_s: float) -> type[MetricsRequestHandler]:
        """This handler serving `source`, dropping a client silent for `idle_timeout_s` seconds."""
        return cast(
            "type[MetricsRequestHandler]", type(cls.__name__, (cls,), {"source": source, "timeout": idle_timeout_s})
        )

    def setup(self) -> None:
        """The connection's files: reading and writing under the request's limits."""
        super().setup()
        self.rfile.close()  # the plain file over the socket, replaced by one that keeps the limits
        self._limits = _Limits()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self._limits, self.timeout))
        self.wfile = _DeadlineWriter(self.connection, self._limits)

    def handle_one_request(self) -> None:
        """One request and its answer, each under its deadline; a 431 to a request too large (`_refuse_too_large`)."""
        self._limits.start_request()  # past it, a TimeoutError the base class takes as the end of the connection
        try:
            super().handle_one_request()
        except RequestTooLarge:
            self._refuse_too_large()

    def _refuse_too_large(self) -> None:
        """431 to a request past `MAX_REQUEST_HEAD_BYTES`, then the connection closed; said at most once a minute."""
        self.close_connection = True
        if isinstance(self.server, MetricsServer):
            self.server.note_too_large(self.client_address)
        self._answer_then_linger(lambda: self.wfile.write(TOO_LARGE_ANSWER))

    def do_GET(self) -> None:
        """GET: the page with its body."""
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        """HEAD: the headers GET would send."""
        self._answer(with_body=False)

    def do_POST(self) -> None:
        """POST, and the other methods below: 405 (http.server answered `501 Unsupported method`)."""
        self._not_allowed()

    do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_POST

    def _not_allowed(self) -> None:
        """405 with `Allow: GET, HEAD` to a method the pages do not take (404 on another path); the connection closed.

        Nothing here reads a request's body: it is dropped (`linger`), neither taken for a next request nor left
        unread to reset the connection (the client's kernel would drop the answer unread).
        """
        self.close_connection = True
        if self.path.split("?")[0] in ("/", "/metrics"):
            status, extra, body = 405, [("Allow", ALLOWED_METHODS)], f"only {ALLOWED_METHODS} are answered\n".encode()
        else:
            status, extra, body = 404, [], b"only /metrics is served\n"
        self.send_response(status)
        for name, value in [*extra, ("Connection", "close"), ("Content-Type", "text/plain; charset=utf-8")]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))

        def headers_then_body() -> None:
            self.end_headers()
            self.wfile.write(body)

        self._answer_then_linger(headers_then_body)

    def _answer_then_linger(self, answer: Callable[[], object]) -> None:
        """Send an answer that closes the connection, then drop what the client still sends (`linger`).

        A client that hung up, or did not take the answer in time, is no error.
        """
        try:
            answer()
        except OSError as exc:
            if not client_gone(exc):
                raise
            return
        linger(self.connection)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?")[0]
        if path == "/":
            self._send(LANDING_PAGE, [("Content-Type", "text/html; charset=utf-8")], with_body)
            return
        if path != "/metrics":
            self.send_error(404, "only /metrics is served")
            return
        try:
            body = self.source.text(scrape_wait(self.headers.get(SCRAPE_TIMEOUT_HEADER))).encode()
        except StaleCodeError as exc:  # said once already (`StaleCode`): the job's `up` fails, no node goes down
            self.send_error(500, "factoryctl changed on disk: restart metrics serve", str(exc))
            return
        except Exception as exc:  # one failed scrape must not kill the exporter nor print a traceback
            sys.stderr.write(f"factoryctl: metrics: could not refresh: {exc}\n")
            self.send_error(503, "metrics are unavailable right now")
            return
        body, encoding = encoded_body(body, self.headers.get("Accept-Encoding"))
        self._send(body, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), *encoding], with_body)

    def _send(self, body: bytes, headers: list[tuple[str, str]], with_body: bool) -> None:
        self.send_response(200)
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            self.send_header(name, value)
        try:
            self.end_headers()
            if with_body:
                self.wfile.write(body)
        except OSError as exc:  # a scraper that hung up (its scrape timeout): normal, so nothing is said
            if not client_gone(exc):
                raise
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Nothing: a scrape is not worth a line (failures are said by `report_request_failure`)."""
        pass


def linger(sock: socket.socket) -> None:
    """Read and drop what the client still sends, until it closes, for at most `LINGER_S` and `LINGER_MAX_BYTES`.

    Closing a connection with bytes of its request unread resets it, and the client's kernel then drops the answer sent
    just before (the 431) unread.
    """
    sink, taken = bytearray(16384), 0
    until = time.monotonic() + LINGER_S
    with contextlib.suppress(OSError):  # the client gone, or the time up (TimeoutError): closed as it is
        sock.shutdown(socket.SHUT_WR)  # the answer's end: the client closes its side once it has read it
        while taken < LINGER_MAX_BYTES and (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            read = sock.recv_into(sink)
            if not read:
                return
            taken += read


class _Note:
    """How many times a refusal came since it was last said on stderr, said at most once every `NOTE_EVERY_S`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # refusals come from the handlers' threads too
        self._count, self._said = 0, -NOTE_EVERY_S

    def count(self) -> int:
        """One more refusal: how many to say now (then counted from 0 again), or 0 when one was said too lately."""
        with self._lock:
            self._count += 1
            now = time.monotonic()
            if now - self._said < NOTE_EVERY_S:
                return 0
            count, self._count, self._said = self._count, 0, now
            return count


#: What socketserver passes for a request (a stream server's: its connected socket).
_Request = socket.socket | tuple[bytes, socket.socket]


class MetricsServer(ThreadingHTTPServer):
    """A thread per connection, at most `MAX_HANDLER_THREADS` of them; a failed request is one line, or nothing."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.request_queue_size = LISTEN_BACKLOG  # read here, so that a test can change it
        self._free = threading.BoundedSemaphore(MAX_HANDLER_THREADS)
        self._busy, self._too_large = _Note(), _Note()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind, IPv4 clients taken on `::` too where the system allows it."""
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError, AttributeError):  # no dual stack here: IPv6 clients only
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(self, request: _Request, client_address: object) -> None:
        """A thread for `request` if one is free, else a 503 at once (`_refuse`)."""
        if not self._free.acquire(blocking=False):
            self._refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its place is free again
            self._free.release()
            raise

    def process_request_thread(self, request: _Request, client_address: object) -> None:
        """The request's thread, its place freed as it ends."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._free.release()

    def _refuse(self, request: _Request) -> None:
        """503 to a connection no thread is free for, without waiting for it; said at most once a minute."""
        with contextlib.suppress(OSError):
            if not isinstance(request, socket.socket):  # a stream server's request always is
                return
            request.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                request.recv(65536)  # its request, if already here: closing with it unread would reset the 503
            request.send(BUSY_ANSWER)
        refused = self._busy.count()
        if refused:
            sys.stderr.write(
                f"factoryctl: metrics: {MAX_HANDLER_THREADS} connections are already being answered: refused "
                f"{refused} more with 503 (said at most once a minute)\n"
            )

    def note_too_large(self, client_address: object) -> None:
        """A request refused with 431 (`MetricsRequestHandler`): said at most once a minute, with the last client."""
        refused = self._too_large.count()
        if refused:
            from factoryctl.model.telemetry import escape_controls

            requests = "request" if refused == 1 else "requests"
            line = (
                f"factoryctl: metrics: refused {refused} {requests} with 431, request line and headers over "
                f"{MAX_REQUEST_HEAD_BYTES} bytes (the last from {client_text(client_address)}; said at most once a "
                "minute)"
            )
            sys.stderr.write(escape_controls(line) + "\n")

    def handle_error(self, request: _Request, client_address: object) -> None:
        """One line for a failed request, nothing when its client hung up (`report_request_failure`)."""
        report_request_failure(client_address, sys.exc_info()[1])


def listen(address: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A `MetricsServer` on `address` (IPv4 or IPv6) and `port`; a usage error (exit 2) when it cannot listen.

    http.server listens on IPv4 only: `--address ::1` was refused. A name with an IPv4 address keeps listening on
    IPv4, as before; `::` takes IPv4 clients too (dual stack) where the system allows it.
    """
    from factoryctl.errors import UsageError

    try:
        found = {
            info[0] for info in socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        }
        family = socket.AF_INET if socket.AF_INET in found else socket.AF_INET6
        server_class = type("MetricsServer", (MetricsServer,), {"address_family": family})
        return cast("type[MetricsServer]", server_class)((address, port), handler)
    except OSError as exc:
        in_use = exc.errno in (errno.EADDRINUSE, errno.EACCES)
        hint = "pick another --port." if in_use else ADDRESS_HINT
        raise UsageError(f"cannot listen on {url_host(address)}:{port}: {exc.strerror or exc}.", hint) from None


def client_gone(exc: BaseException | None) -> bool:
    """Whether `exc` is a scraper hanging up mid-request (reset, broken pipe, or its idle timeout), not a failure."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN)
    )


def report_request_failure(client_address: object, exc: BaseException | None) -> None:
    """A request that failed (the server's `handle_error`): nothing when its client hung up, else one line.

    socketserver printed a traceback between dashed lines for each, on stderr, many lines interleaved when scrapes
    failed together (every Prometheus scrape timeout is a client hanging up mid-response).
    """
    if client_gone(exc):
        return
    from factoryctl.model.telemetry import escape_controls

    what = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    line = f"factoryctl: metrics: a request from {client_text(client_address)} failed: {what}"
    sys.stderr.write(escape_controls(line) + "\n")


def client_text(client_address: object) -> str:
    """A client's address as `host:port` (`[::1]:port` for IPv6), not yet escaped."""
    if isinstance(client_address, tuple) and len(client_address) >= 2:  # (host, port), and two more for IPv6
        return f"{url_host(str(client_address[0]))}:{client_address[1]}"
    return str(client_address)
