"""`factoryctl metrics serve`: Prometheus `/metrics` with dcgm-exporter compatible names.

Answers from the store when a live controller writes it (one read per scrape), and otherwise polls the nodes itself,
in the background, at most once per `--min-interval`. A scrape waits for that poll only until its scraper's deadline
(`X-Prometheus-Scrape-Timeout-Seconds`, less a margin; telemetry/scrape_poll.py). gzip and HEAD are answered;
IPv6 addresses are listened on as IPv4 ones.

SIGHUP re-reads factory.yaml, as it does for the controller. A node the controller no longer stores samples for is
exported down, not up with its last values (`read_live`).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from factoryctl.config import FactoryConfig
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.signal_wake import Wake
    from factoryctl.telemetry.scrape_poll import BackgroundPoll

#: Seconds a scrape waits for the nodes when its scraper gives no deadline (Prometheus's default timeout is 10 s).
DEFAULT_SCRAPE_WAIT_S = 5.0


class MetricsSource:
    """The exposition text of every scrape: from the live store, else from a poll run aside (`BackgroundPoll`)."""

    def __init__(self, config: FactoryConfig, min_interval_s: float, timeout: float, quiet: bool = False) -> None:
        self.config = config
        self.quiet = quiet  # -q: a reload is said only when it is refused
        self.min_interval_s = min_interval_s
        self.timeout = timeout
        self._lock = threading.Lock()
        self._poll = self._new_poll(config)
        self._rendered: tuple[list[NodeSample], float, str] | None = None  # polled samples, when, their text

    def text(self, wait_s: float = DEFAULT_SCRAPE_WAIT_S) -> str:
        """The /metrics body, read from the store on every scrape while a controller writes it.

        Otherwise it comes from polling the nodes, waiting at most `wait_s` seconds (the scrape's deadline) for
        their answers: a node that has not answered by then is served as the poll before saw it, else down.
        """
        from factoryctl.telemetry.latest import read_live

        with self._lock:
            config, poll = self.config, self._poll
        live = read_live(config, list(config.nodes.values()))
        if live is not None:
            return self._render(config, live.samples, polled=False)
        samples = poll.samples(wait_s)
        with self._lock:
            rendered = self._rendered
        if (
            rendered is not None
            and _same(rendered[0], samples)
            and time.monotonic() - rendered[1] < self.min_interval_s
        ):
            return rendered[2]  # the same answers as the last scrape: no second read of the store
        text = self._render(config, samples, polled=True)
        with self._lock:
            if poll is self._poll:
                self._rendered = (samples, time.monotonic(), text)
        return text

    def reload(self) -> bool:
        """Re-read factory.yaml (SIGHUP); a broken file, or one read from a pipe, keeps the configuration it had.

        Says on stderr what it did (refused, or the node count unless -q); returns whether it took the new file.
        """
        from factoryctl.config import load_config
        from factoryctl.errors import ConfigError, FactoryError

        path = self.config.path
        try:
            if path is not None and path.is_fifo():
                raise ConfigError(
                    f"{path} is a pipe, read once", "restart `metrics serve` to change its configuration."
                )
            new = load_config(path)
        except FactoryError as exc:
            why = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
            sys.stderr.write(f"factoryctl: metrics: reload refused, keeping the previous configuration: {why}\n")
            return False
        with self._lock:  # the next scrape reads the store or polls anew; a poll of the old file is left to end
            self.config, self._poll, self._rendered = new, self._new_poll(new), None
        if not self.quiet:
            count = len(new.nodes)
            sys.stderr.write(f"reloaded {path or 'factory.yaml'}: {count} node{'' if count == 1 else 's'}\n")
        return True

    def _new_poll(self, config: FactoryConfig) -> BackgroundPoll:
        from factoryctl.telemetry.scrape_poll import BackgroundPoll

        return BackgroundPoll(config, self.timeout, self.min_interval_s)

    @staticmethod
    def _render(config: FactoryConfig, samples: list[NodeSample], polled: bool) -> str:
        """The exposition of `samples`, with the store's drained nodes; polled GPUs keep their stored identity."""
        from factoryctl.store.sqlite import Store, StoreError
        from factoryctl.telemetry.health import carry_forward
        from factoryctl.telemetry.prometheus import render

        drained: set[str] = set()
        try:
            store = Store(config.store_path, readonly=True)
            try:
                drained = set(store.drained_nodes())
                if polled:  # a poll's agents know nothing of before: a lost GPU keeps its stored identity
                    stored = {state.node: sample for state, sample in store.latest()}
                    samples = [carry_forward(stored.get(s.node), s) for s in samples]
            finally:
                store.close()
        except StoreError:
            pass
        return render(samples, drained)


def _same(before: list[NodeSample], now: list[NodeSample]) -> bool:
    """Whether two scrapes got the very same answers (the same objects: nothing was polled in between)."""
    return len(before) == len(now) and all(a is b for a, b in zip(before, now, strict=True))


#: `--min-interval`: 0 refreshes on every scrape; at most a day, as every option in seconds.
MIN_INTERVAL_CHECK = context.seconds_check("--min-interval", 0.0, "5")


#: Seconds a scraper's connection may sit idle (a client that connects and sends nothing must not keep a thread).
CLIENT_TIMEOUT_S = 10.0


#: The scraper's deadline (Prometheus sends it with every scrape), in seconds; a scrape answers within it.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
#: Seconds of the scraper's deadline kept for reading the store, rendering and sending (at most a quarter of it).
SCRAPE_MARGIN_S = 1.0

#: GET / (exporters' custom): where the metrics are, for whoever opens the address in a browser.
LANDING_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>factoryctl metrics</title></head><body>"
    b'<h1>factoryctl metrics</h1><p><a href="/metrics">/metrics</a></p></body></html>\n'
)


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


def metrics_handler(source: MetricsSource) -> type[BaseHTTPRequestHandler]:
    """The request handler: /metrics (GET and HEAD, gzip when asked), a landing page at /, 404 elsewhere.

    503 when the text cannot be produced.
    """
    from http.server import BaseHTTPRequestHandler  # here: http.server costs 25 ms of every CLI start

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _answer(self, with_body: bool) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                self._send(LANDING_PAGE, "text/html; charset=utf-8", with_body)
                return
            if path != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            try:
                body = source.text(scrape_wait(self.headers.get(SCRAPE_TIMEOUT_HEADER))).encode()
            except Exception as exc:  # one failed scrape must not kill the exporter nor print a traceback
                sys.stderr.write(f"factoryctl: metrics: could not refresh: {exc}\n")
                self.send_error(503, "metrics are unavailable right now")
                return
            self._send(body, "text/plain; version=0.0.4; charset=utf-8", with_body, compressible=True)

        def _send(self, body: bytes, content_type: str, with_body: bool, compressible: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if compressible:
                self.send_header("Vary", "Accept-Encoding")
                if accepts_gzip(self.headers.get("Accept-Encoding")):
                    import gzip

                    body = gzip.compress(body, compresslevel=6, mtime=0)
                    self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            try:
                self.end_headers()
                if with_body:
                    self.wfile.write(body)
            except OSError as exc:  # a scraper that hung up (its scrape timeout): normal, so nothing is said
                if not client_gone(exc):
                    raise
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def register(app: typer.Typer) -> None:
    """Add `metrics` (with its `serve` command) to the root app."""
    metrics_app = typer.Typer(no_args_is_help=True, help="Prometheus metrics (dcgm-exporter names).")
    app.add_typer(metrics_app, name="metrics")

    @metrics_app.command("serve", short_help="Serve /metrics for Prometheus until Ctrl-C.")
    def serve(
        ctx: typer.Context,
        address: str = typer.Option(
            "127.0.0.1", "--address", callback=check_address, help="Listen address (0.0.0.0 or :: for every interface)."
        ),
        port: int = typer.Option(9400, "--port", min=0, max=65535, help="Port (9400, as dcgm-exporter)."),
        min_interval: float = typer.Option(
            5.0, "--min-interval", callback=MIN_INTERVAL_CHECK, help="Seconds between two refreshes (0-86400)."
        ),
        timeout: float = context.timeout_option(15.0, help="Seconds to wait for each node when polling (0.1-86400)."),
    ) -> None:
        """Serve /metrics for Prometheus until Ctrl-C (exit 130, as any command's Ctrl-C); SIGHUP re-reads factory.yaml."""
        from factoryctl.telemetry.poll import check_agent_cache

        source = MetricsSource(context.load(ctx), min_interval, timeout, quiet=context.global_options(ctx)[1])
        check_agent_cache(source.config.nodes.values())  # before serving, not as a failed scrape
        server = listen(address, port, metrics_handler(source))
        if not source.quiet:  # -q: nothing but errors
            sys.stderr.write(f"serving http://{url_host(address)}:{server.server_address[1]}/metrics\n")
        with _reload_on_sighup(source):
            try:
                server.serve_forever()  # Ctrl-C ends it with 130, as any command's (a stopped exporter is not success)
            finally:
                server.server_close()


def check_address(value: str) -> str:
    """The `--address` callback: an empty one is a usage error (it listened on every interface, silently)."""
    if not value.strip():
        from factoryctl.errors import UsageError

        raise UsageError("--address is empty, and it needs an address to listen on.", ADDRESS_HINT)
    return value


#: What `--address` takes, said when it is empty or cannot be listened on.
ADDRESS_HINT = "give --address an address of this machine, e.g. 127.0.0.1, 0.0.0.0 or :: (every interface)."


def url_host(address: str) -> str:
    """`address` as a URL's host: an IPv6 address in brackets (`[::1]`)."""
    return f"[{address}]" if ":" in address else address


def listen(address: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threading HTTP server on `address` (IPv4 or IPv6) and `port`; a usage error (exit 2) when it cannot listen.

    http.server listens on IPv4 only: `--address ::1` was refused. A name with an IPv4 address keeps listening on
    IPv4, as before; `::` takes IPv4 clients too (dual stack) where the system allows it.
    """
    import socket
    from http.server import ThreadingHTTPServer

    from factoryctl.errors import UsageError

    try:
        found = {
            info[0] for info in socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        }
        family = socket.AF_INET if socket.AF_INET in found else socket.AF_INET6

        class Server(ThreadingHTTPServer):
            address_family = family

            def server_bind(self) -> None:
                if family == socket.AF_INET6:
                    with contextlib.suppress(OSError, AttributeError):  # no dual stack here: IPv6 clients only
                        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                super().server_bind()

            def handle_error(self, request: object, client_address: object) -> None:
                report_request_failure(client_address, sys.exc_info()[1])

        return Server((address, port), handler)
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

    client = str(client_address)  # (host, port), and two more for IPv6
    if isinstance(client_address, tuple) and len(client_address) >= 2:
        client = f"{url_host(str(client_address[0]))}:{client_address[1]}"
    what = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    sys.stderr.write(escape_controls(f"factoryctl: metrics: a request from {client} failed: {what}") + "\n")


@contextlib.contextmanager
def _reload_on_sighup(source: MetricsSource) -> Iterator[None]:
    """While the block runs, SIGHUP reloads `source` (in the main thread only: signals are handled there).

    A SIGHUP that came while `metrics serve` started (held by the CLI, cli/signals.py) reloads it at once. The
    handler only gives a `Wake` (signal_wake.py: no lock taken in a handler); one thread of its own reloads, so
    serving goes on while a scrape holds the source (a poll), and a burst of SIGHUPs is one or two reloads in turn
    (a thread per signal made 200 overlapping reloads of a `kill -HUP` loop).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from factoryctl.cli.daemon_hangup import take_held_hangup
    from factoryctl.signal_wake import Wake

    asked, done = Wake(), Wake()
    reloader = threading.Thread(target=_reload_when_asked, args=(source, asked, done), name="metrics-reload")
    reloader.daemon = True
    reloader.start()
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: asked.set())
    if take_held_hangup():
        asked.set()
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
        done.set()
        asked.set()


def _reload_when_asked(source: MetricsSource, asked: Wake, done: Wake) -> None:
    """The reloading thread: one reload per wake-up (a burst of SIGHUPs is one), until `done`."""
    while not done.is_set():
        if asked.wait(3600.0) and not done.is_set():
            source.reload()
