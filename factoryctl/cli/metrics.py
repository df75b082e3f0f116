"""`factoryctl metrics serve`: Prometheus `/metrics` with dcgm-exporter compatible names.

Answers from the store when a live controller writes it (cheap: one read per scrape), and otherwise polls the nodes
itself, at most once per `--min-interval`, so a fast scraper cannot turn into an SSH storm.

SIGHUP re-reads factory.yaml, as it does for the controller: the exporter read it once, so a node added later never
appeared, and SIGHUP (`systemctl reload`) killed it silently (exit 129). A node the controller no longer stores
samples for is exported down, not up with its last values (`read_live`).
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
    from http.server import BaseHTTPRequestHandler

    from factoryctl.config import FactoryConfig


class MetricsSource:
    """The latest exposition text, refreshed on demand (read_live, else a poll), at most every `min_interval_s`."""

    def __init__(self, config: FactoryConfig, min_interval_s: float, timeout: float, quiet: bool = False) -> None:
        self.config = config
        self.quiet = quiet  # -q: a reload is said only when it is refused
        self.min_interval_s = min_interval_s
        self.timeout = timeout
        self._lock = threading.Lock()
        self._text = ""
        self._at = 0.0

    def text(self) -> str:
        """The /metrics body, read from the store on every scrape while a controller writes it.

        Otherwise it comes from a poll of the nodes, at most every `min_interval_s`: a fast scraper must not turn
        into an SSH storm.
        """
        with self._lock:
            if not self._text or time.monotonic() - self._at >= self.min_interval_s:
                self._text, polled = self._refresh()
                self._at = time.monotonic() if polled else 0.0
            return self._text

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
        with self._lock:
            self.config, self._text, self._at = new, "", 0.0  # the next scrape reads the store or polls anew
        if not self.quiet:
            count = len(new.nodes)
            sys.stderr.write(f"reloaded {path or 'factory.yaml'}: {count} node{'' if count == 1 else 's'}\n")
        return True

    def _refresh(self) -> tuple[str, bool]:
        """The exposition text, and whether it came from polling the nodes (rather than the live store)."""
        from factoryctl.store.sqlite import Store, StoreError
        from factoryctl.telemetry.health import carry_forward
        from factoryctl.telemetry.latest import read_live
        from factoryctl.telemetry.poll import poll_nodes
        from factoryctl.telemetry.prometheus import render

        nodes = list(self.config.nodes.values())
        live = read_live(self.config, nodes)
        samples = live.samples if live is not None else poll_nodes(self.config, nodes, self.timeout).samples
        drained: set[str] = set()
        try:
            store = Store(self.config.store_path, readonly=True)
            try:
                drained = set(store.drained_nodes())
                if live is None:  # a poll's agents know nothing of before: a lost GPU keeps its stored identity
                    stored = {state.node: sample for state, sample in store.latest()}
                    samples = [carry_forward(stored.get(s.node), s) for s in samples]
            finally:
                store.close()
        except StoreError:
            pass
        return render(samples, drained), live is None


#: `--min-interval`: 0 refreshes on every scrape; at most a day, as every option in seconds.
MIN_INTERVAL_CHECK = context.seconds_check("--min-interval", 0.0, "5")


#: Seconds a scraper's connection may sit idle (a client that connects and sends nothing must not keep a thread).
CLIENT_TIMEOUT_S = 10.0


def metrics_handler(source: MetricsSource) -> type[BaseHTTPRequestHandler]:
    """The request handler serving `source` at /metrics: 404 elsewhere, 503 when the text cannot be produced."""
    from http.server import BaseHTTPRequestHandler  # here: http.server costs 25 ms of every CLI start

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            try:
                body = source.text().encode()
            except Exception as exc:  # one failed scrape must not kill the exporter nor print a traceback
                sys.stderr.write(f"factoryctl: metrics: could not refresh: {exc}\n")
                self.send_error(503, "metrics are unavailable right now")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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
        address: str = typer.Option("127.0.0.1", "--address", help="Listen address (0.0.0.0 for every interface)."),
        port: int = typer.Option(9400, "--port", min=0, max=65535, help="Port (9400, as dcgm-exporter)."),
        min_interval: float = typer.Option(
            5.0, "--min-interval", callback=MIN_INTERVAL_CHECK, help="Seconds between two refreshes (0-86400)."
        ),
        timeout: float = context.timeout_option(15.0, help="Seconds to wait for each node when polling (0.1-86400)."),
    ) -> None:
        """Serve /metrics for Prometheus until Ctrl-C (exit 130, as any command's Ctrl-C); SIGHUP re-reads factory.yaml."""
        from http.server import ThreadingHTTPServer

        from factoryctl.errors import UsageError
        from factoryctl.telemetry.poll import check_agent_cache

        source = MetricsSource(context.load(ctx), min_interval, timeout, quiet=context.global_options(ctx)[1])
        check_agent_cache(source.config.nodes.values())  # before serving, not as a failed scrape

        try:
            server = ThreadingHTTPServer((address, port), metrics_handler(source))
        except OSError as exc:
            in_use = exc.errno in (errno.EADDRINUSE, errno.EACCES)
            hint = "pick another --port." if in_use else "give --address an address of this machine, e.g. 0.0.0.0."
            raise UsageError(f"cannot listen on {address}:{port}: {exc.strerror or exc}.", hint) from None
        if not source.quiet:  # -q: nothing but errors
            sys.stderr.write(f"serving http://{address}:{server.server_address[1]}/metrics\n")
        with _reload_on_sighup(source):
            try:
                server.serve_forever()  # Ctrl-C ends it with 130, as any command's (a stopped exporter is not success)
            finally:
                server.server_close()


@contextlib.contextmanager
def _reload_on_sighup(source: MetricsSource) -> Iterator[None]:
    """While the block runs, SIGHUP reloads `source` (in the main thread only: signals are handled there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: _reload_aside(source))
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def _reload_aside(source: MetricsSource) -> None:
    """SIGHUP: reload on a thread of its own, so serving goes on while a scrape holds the source (a poll)."""
    threading.Thread(target=source.reload, name="metrics-reload", daemon=True).start()
