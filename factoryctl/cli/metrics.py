"""`factoryctl metrics serve`: Prometheus `/metrics` with dcgm-exporter compatible names.

Answers from the store when a live controller writes it (one read per scrape), and otherwise polls the nodes itself,
in the background, at most once per `--min-interval`. A scrape waits for that poll only until its scraper's deadline
(`X-Prometheus-Scrape-Timeout-Seconds`, less a margin; telemetry/scrape_poll.py). gzip and HEAD are answered;
IPv6 addresses are listened on as IPv4 ones. The HTTP side, and the limits that keep a slow or crowding client from
holding it, are in metrics_http.py.

It runs as a daemon, as the controller does: SIGTERM is its clean stop (exit 0), SIGHUP re-reads factory.yaml. A
node the controller no longer stores samples for is exported down, not up with its last values (`read_live`).
Running for months, it imports all it may need when it starts, and pins the agent it ships (`freeze_code`): an
upgrade's files, loaded by the first poll after the controller stopped, exported every node down, and an upgrade's
agent, shipped then, spoke a protocol it does not. Should its code fail to load all the same, that is said once on
stderr and its scrapes answer 500 (Prometheus's `up` of the job goes 0), never a node down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import FrameType

    from factoryctl.config import FactoryConfig
    from factoryctl.model.telemetry import GpuSample, NodeSample
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
        from factoryctl.stale_code import StaleCode

        self._lock = threading.Lock()
        #: factoryctl's files changed under this process (an upgrade): said once on stderr, its polled scrapes 500.
        self.stale = StaleCode("metrics serve", lambda detail: sys.stderr.write(f"factoryctl: metrics: {detail}\n"))
        self._poll = self._new_poll(config)
        self._rendered: tuple[list[NodeSample], float, str] | None = None  # polled samples, when, their text
        self._newest = NewestServed()

    def text(self, wait_s: float = DEFAULT_SCRAPE_WAIT_S) -> str:
        """The /metrics body, read from the store on every scrape while a controller writes it.

        Otherwise it comes from polling the nodes, waiting at most `wait_s` seconds (the scrape's deadline) for
        their answers: a node that has not answered by then is served as the poll before saw it, else down. Either
        way a node's sample older than one already served is not served (`NewestServed`).

        factoryctl's own code failing to load (`StaleCode`: its files changed under this process) raises
        `StaleCodeError`, said once: the scrape fails, no node is served down for it.
        """
        from factoryctl.stale_code import StaleCodeError

        try:
            return self._text(wait_s)
        except StaleCodeError:
            raise
        except Exception as exc:
            if self.stale.notice(exc):
                raise StaleCodeError(self.stale.message) from exc
            raise

    def _text(self, wait_s: float) -> str:
        from factoryctl.telemetry.latest import read_live

        with self._lock:
            config, poll = self.config, self._poll
        live = read_live(config, list(config.nodes.values()))
        if live is not None:
            return self._render(config, self._newest_of(config, live.samples), polled=False)
        samples = self._newest_of(config, poll.samples(wait_s))
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

    def _newest_of(self, config: FactoryConfig, samples: list[NodeSample]) -> list[NodeSample]:
        """`samples` with no step back of a node's time or counters (`NewestServed`), for at most `hold_s`."""
        with self._lock:
            return self._newest.served(samples, hold_s(config))

    def _new_poll(self, config: FactoryConfig) -> BackgroundPoll:
        from factoryctl.telemetry.scrape_poll import BackgroundPoll

        return BackgroundPoll(config, self.timeout, self.min_interval_s, self.stale)

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


class NewestServed:
    """What keeps each node's series from going back: its newest sample (by time), and each counter's highest value.

    A stalled controller (SIGSTOP, a store write lock) made the exporter poll the nodes and serve newer values; once
    it went on, its backlog of older samples made the store live again and was served as is, gauges stepping back in
    time. And a stored sample's counters are its agent's last slow-tier read (`controller.slow_interval_s`, up to 5 s
    older than the sample), a poll's are read then: after a poll, the store's energy went back by up to 1,370 J per
    GPU, a counter reset for Prometheus (whose `increase()` then jumped by the whole counter). So an older sample is
    not served (the kept one is), nor a counter lower than served before (the highest served is). A down sample is
    served as it comes (it shows no value). Held back for `hold_s`, an older sample or a lower counter is served
    after all: a node's clock set back, a driver reload restarting the energy counter.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        from factoryctl.telemetry.prometheus import COUNTER_FIELDS

        self._counters, self._monotonic = COUNTER_FIELDS, monotonic
        self._kept: dict[str, NodeSample] = {}
        self._top: dict[_Series, float] = {}  # each counter's highest value served
        self._held_since: dict[str | _Series, float] = {}  # monotonic: since when a node or counter is held back

    def served(self, samples: list[NodeSample], hold_s: float) -> list[NodeSample]:
        """`samples` as they may be served; not thread-safe (the caller holds a lock).

        A sample is returned as it is unless something in it is held back, so that scrapes can tell when nothing
        changed (`_same`).
        """
        now = self._monotonic()
        return [self._counters_kept(self._newest(sample, now, hold_s), now, hold_s) for sample in samples]

    def _newest(self, sample: NodeSample, now: float, hold_s: float) -> NodeSample:
        """`sample`, or its node's kept one when older (and held back for less than `hold_s`)."""
        if sample.state == "down":
            return sample
        kept = self._kept.get(sample.node)
        if kept is not None and sample.time < kept.time and self._still_held(sample.node, now, hold_s):
            return kept
        self._kept[sample.node] = sample
        self._held_since.pop(sample.node, None)
        return sample

    def _counters_kept(self, sample: NodeSample, now: float, hold_s: float) -> NodeSample:
        """`sample` with each GPU's counters no lower than served before (`_gpu_counters_kept`)."""
        gpus = tuple(self._gpu_counters_kept(sample.node, gpu, now, hold_s) for gpu in sample.gpus)
        if all(new is gpu for new, gpu in zip(gpus, sample.gpus, strict=True)):
            return sample
        return dataclasses.replace(sample, gpus=gpus)

    def _gpu_counters_kept(self, node: str, gpu: GpuSample, now: float, hold_s: float) -> GpuSample:
        """`gpu` with a counter lower than the highest served (the same board: its UUID) replaced by that one."""
        kept: dict[str, Any] = {}
        for field in self._counters:
            value = getattr(gpu, field)
            if value is None or not math.isfinite(value):  # not exported (prometheus.py): nothing to keep
                continue
            series = (node, gpu.index, gpu.uuid, field)
            top = self._top.get(series)
            if top is not None and value < top and self._still_held(series, now, hold_s):
                kept[field] = top
                continue
            self._top[series] = value
            self._held_since.pop(series, None)
        return dataclasses.replace(gpu, **kept) if kept else gpu

    def _still_held(self, what: str | _Series, now: float, hold_s: float) -> bool:
        """Whether a node's sample (or a counter) held back from `now` on, or since before, still is."""
        return now - self._held_since.setdefault(what, now) <= hold_s


#: A GPU's counter: node, GPU index, UUID and the sample's field.
_Series = tuple[str, int, str | None, str]


def hold_s(config: FactoryConfig) -> float:
    """Seconds an older sample or a lower counter is held back (`NewestServed`): 13.5 s with factory.yaml's defaults.

    As long as the controller lets a node be silent (`read_live`), and a slow-tier interval more: a stored counter is
    up to one older than its sample.
    """
    from factoryctl.telemetry.health import silent_for_down_s
    from factoryctl.telemetry.node_clock import CLOCK_OFF_S

    controller = config.settings.controller
    return silent_for_down_s(controller.interval_s) + CLOCK_OFF_S + controller.slow_interval_s


def _same(before: list[NodeSample], now: list[NodeSample]) -> bool:
    """Whether two scrapes got the very same answers (the same objects: nothing was polled in between)."""
    return len(before) == len(now) and all(a is b for a, b in zip(before, now, strict=True))


#: `--min-interval`: 0 refreshes on every scrape; at most a day, as every option in seconds.
MIN_INTERVAL_CHECK = context.seconds_check("--min-interval", 0.0, "5")


#: Seconds a scraper's connection may sit idle (a client that connects and sends nothing must not keep a thread).
CLIENT_TIMEOUT_S = 10.0


def metrics_handler(source: MetricsSource) -> type[BaseHTTPRequestHandler]:
    """The request handler serving `source` (metrics_http.py), a client silent for `CLIENT_TIMEOUT_S` dropped."""
    from factoryctl.cli.metrics_http import MetricsRequestHandler  # here: http.server costs 25 ms of every CLI start

    return MetricsRequestHandler.serving(source, CLIENT_TIMEOUT_S)


def register(app: typer.Typer) -> None:
    """Add `metrics` (with its `serve` command) to the root app."""
    metrics_app = typer.Typer(no_args_is_help=True, help="Prometheus metrics (dcgm-exporter names).")
    app.add_typer(metrics_app, name="metrics")

    @metrics_app.command("serve", short_help="Serve /metrics for Prometheus until SIGTERM or Ctrl-C.")
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
        """Serve /metrics for Prometheus until stopped; SIGHUP re-reads factory.yaml.

        SIGTERM (systemd's stop) is its clean stop, exit 0; Ctrl-C exits 130, as any command's Ctrl-C.
        """
        quiet = context.global_options(ctx)[1]  # -q: nothing but errors
        with _sigterm_stops() as (stop, stopped_by):  # from here on a SIGTERM is the clean stop, once serving
            from factoryctl.cli.metrics_http import listen  # after: http.server takes 25 ms to load
            from factoryctl.stale_code import freeze_code
            from factoryctl.telemetry.poll import check_agent_cache

            freeze_code()  # its polls, once no controller runs, must not load or ship files an upgrade put there

            source = MetricsSource(context.load(ctx), min_interval, timeout, quiet=quiet)
            check_agent_cache(source.config.nodes.values())  # before serving, not as a failed scrape
            server = listen(address, port, metrics_handler(source))
            if not quiet:
                sys.stderr.write(f"serving http://{url_host(address)}:{server.server_address[1]}/metrics\n")
            with _reload_on_sighup(source):
                serve_until_stopped(server, stop)
        if stopped_by and not quiet:
            sys.stderr.write(f"metrics serve: stopped ({signal.Signals(stopped_by[0]).name})\n")


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[tuple[Wake, list[int]]]:
    """While the block runs, SIGTERM, the daemon's clean stop, only gives the `Wake` yielded and adds itself to the list.

    SIGTERM ended `metrics serve` with exit 143 and "run the command again, with more time if a time limit ended it",
    so each `systemctl stop` left the unit failed. As the controller's (controller.py), the handler takes no lock (a
    burst of SIGTERMs is the same one stop: signal_wake.py) and stays in place once a SIGTERM came, until the CLI's
    end with its handlers (a later one changes nothing). A SIGTERM ignored where factoryctl started stays ignored;
    off the main thread no handler can be installed.

    Ctrl-C is the CLI's (exit 130, as any command's) until a SIGTERM came: the first stop decides, so a Ctrl-C after
    it only gives the `Wake` too. Left to the CLI's handler, which knew nothing of the SIGTERM, a Ctrl-C 10 ms after
    `systemctl stop` raised, and the clean stop exited 130. A Ctrl-C ignored (`cmd &`) stays ignored.
    """
    from factoryctl.signal_wake import Wake

    stop, stopped_by = Wake(), []
    previous: dict[int, Any] = {}

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stopped_by.append(signum)  # a list's append: no lock, one bytecode
        stop.set()

    def on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        if stopped_by:  # after the SIGTERM: the same one stop
            stop.set()
        elif callable(ctrl_c := previous[signal.SIGINT]):  # before it: the CLI's Ctrl-C, as if this were not here
            ctrl_c(signum, frame)

    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_stop)
        if callable(signal.getsignal(signal.SIGINT)):
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield stop, stopped_by
    finally:
        if not stopped_by:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def serve_until_stopped(server: ThreadingHTTPServer, stop: Wake) -> None:
    """Serve on a thread of its own until `stop` is given (SIGTERM), or Ctrl-C (KeyboardInterrupt) ends the wait.

    The server is shut down and closed either way; a `stop` given before it served ends it at once. The wait is in
    half-second slices: Python runs a signal's handler in the main thread only, and a signal the kernel gave to a
    serving thread waited for the main thread's next bytecode (an hour's wait: `systemctl stop` timed out). A
    serving thread that died (a bug) ends the wait too, its error raised here: the process must not stay up serving
    nothing.
    """
    died: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever()
        except BaseException as exc:
            died.append(exc)
            stop.set()

    serving = threading.Thread(target=serve, name="metrics-serve", daemon=True)
    serving.start()
    try:
        while not stop.wait(_SIGNAL_SLICE_S):  # a Ctrl-C raises here (the CLI's handler)
            pass
    finally:
        server.shutdown()
        server.server_close()
    if died:
        raise died[0]


#: How long the main thread waits at a time for `metrics serve`'s stop, so a signal's handler runs soon after it.
_SIGNAL_SLICE_S = 0.5


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
