"""One persistent link per node: a connection, one long-lived streaming agent, and reconnection when it breaks.

Each `NodeLink` is a thread that connects (through the node's transport), asks its agent to stream at the sampling
interval, and watches: a dead agent, a broken connection or three missed samples tear the link down, and it is
rebuilt after an exponential backoff with jitter, so a flapping node or a restarting fleet never hammers sshd. A new
interval (a reload) is applied on the link's session (the stream is restarted, the node not reconnected).

Samples go to a `SampleSink` from the session's reader thread: the controller's store writer, or the dashboard's
per-node state when it collects on its own (one reconnect loop for both). A sample the agent could not take is
reported to the sink as a failure with the agent's reason and does not count as hearing the node; a link with no
good sample for as long as a silent link is given is rebuilt on a fresh agent. The sink is told when the link is
made again (`link_connected`). A link whose samples look behind asks its agent for its time (`clock`, at most every
`CLOCK_CHECK_EVERY_S`) and tells the sink (`clock_bounded`). The rules for both, when to ask and when a silence is
a stall, are `link_state`'s; the link applies them to its session.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError, UsageError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.health import MISSED_FOR_DOWN
from factoryctl.telemetry.link_state import ClockProbe, LinkSilence
from factoryctl.telemetry.poll import as_node_error, check_agent_cache, open_transport
from factoryctl.telemetry.stall_watch import StallWatch
from factoryctl.transport.base import NodeTransport
from factoryctl.transport.host_limits import raise_open_file_limit
from factoryctl.transport.session import AgentSession, missed_count

log = logging.getLogger("factoryctl.telemetry")

#: The shortest silence after which a connected link is rebuilt, whatever the interval: a node merely slow for a few
#: seconds (loaded, a GC pause, a network blip) keeps its agent rather than pay a new SSH connection and agent start
#: (docs/controller.md, "Node states"; the dashboard's own collector the same: docs/dashboard.md).
STALL_MIN_S = 10.0
#: A session that streamed this long resets the reconnect backoff: a flapping node backs off too.
HEALTHY_SESSION_S = 30.0

#: Opens a node's transport and starts its agent (hello received).
Connector = Callable[[NodeSpec], tuple[NodeTransport, AgentSession]]


class SampleSink(Protocol):
    """Where a link reports: samples and failures."""

    def offer(self, sample: NodeSample) -> None:
        """A sample arrived (called on the session's reader thread: must be cheap)."""
        ...

    def link_failed(self, node: str, error: NodeError) -> None:
        """The link broke or could not be made."""
        ...

    def sample_failed(self, node: str, error: NodeError) -> None:
        """The link is fine but its agent could not take a sample (an `ok: false` stream sample: the driver)."""
        ...

    def link_connected(self, node: str) -> None:
        """The link connected again: a failure reported before it no longer says why the node is silent."""
        ...

    def clock_bounded(self, node: str, node_time: float, asked_at: float) -> None:
        """The node's agent said its time was `node_time` when asked at `asked_at` (this machine's wall clock)."""
        ...

    def samples_missed(self, node: str, count: int) -> None:
        """The node's agent dropped `count` samples from its output backlog (`missed`, docs/agent-protocol.md)."""
        ...


def transport_connector(
    config: FactoryConfig,
    timeout_s: float,
    nodes: Iterable[NodeSpec] | None = None,
    stop: threading.Event | None = None,
) -> Connector:
    """The real connector: the node's inventory transport (ssh or local), then its agent.

    A bad `$FACTORYCTL_REMOTE_CACHE` is raised here, once, before any link connects (checked for `nodes`, the ones
    linked to: every inventory node when None). Once `stop` is set, a connection that comes up late (a slow SSH
    handshake) is closed without starting the agent: quitting never leaves one starting behind it.
    """
    check_agent_cache(config.nodes.values() if nodes is None else nodes)

    def connect(node: NodeSpec) -> tuple[NodeTransport, AgentSession]:
        transport = open_transport(node, config, timeout_s)
        try:
            if stop is not None and stop.is_set():
                raise NodeError(node.name, "agent", "closed before its agent was started.")
            return transport, transport.start_agent(timeout_s)
        except BaseException:
            with contextlib.suppress(Exception):
                transport.close()
            raise

    return connect


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": a delay drawn from [top/2, top], top doubling up to `cap_s`."""

    base_s: float = 1.0
    cap_s: float = 30.0

    @classmethod
    def for_factory(cls, config: FactoryConfig) -> Backoff:
        """The factory's reconnect rule, one for the controller and the dashboard's own collector.

        The first delay is about one interval (at least 0.5 s), the longest `controller.reconnect_max_s`.
        """
        return cls(base_s=max(config.interval_s, 0.5), cap_s=config.settings.controller.reconnect_max_s)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt number `attempt` (0 = first retry)."""
        top = min(self.cap_s, self.base_s * (2 ** min(attempt, 30)))
        return rng.uniform(top / 2, top)


class NodeLink:
    """A thread keeping one node's agent streaming into a sink."""

    def __init__(
        self,
        node: NodeSpec,
        interval_s: float,
        connect: Connector,
        sink: SampleSink,
        backoff: Backoff,
        rng: random.Random | None = None,
        stall_s: float | None = None,
        slow_interval_s: float | None = None,
        stream_timeout_s: float = 10.0,
        stall_watch: StallWatch | None = None,
    ) -> None:
        self.node = node
        self.interval_s = interval_s
        self.slow_interval_s = slow_interval_s
        self.stream_timeout_s = stream_timeout_s  # how long the agent may take to answer `stream`
        #: Silence after which a connected link is rebuilt. The node is already `down` after three missed samples;
        #: the link waits a little longer, so a merely overloaded node is not hit with a restart storm.
        self._stall_given = stall_s
        self.stall_s = stall_s if stall_s is not None else _stall_for(interval_s)
        self._connect = connect
        self._sink = sink
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()  # stopped, or a new interval to stream at
        self._retired = False
        self._got_sample = threading.Event()
        self._silence = LinkSilence(stall_watch)  # a stall of the controller itself is not the node's silence
        self._clock_probe = ClockProbe()
        self.connects = 0
        self.start_failed = False  # `start` found no thread to run on
        #: True while connecting and starting the stream: what `stop()` cannot cut short (an SSH handshake).
        self.connecting = False
        self._session: AgentSession | None = None
        self._transport: NodeTransport | None = None  # from connect to close: what `abort` closes
        #: The (interval, slow interval) its stream was last asked for: a wake restarts the stream only for another.
        #: A closed session's reader, reporting its end late (under load), woke the next session's link, which
        #: stopped and restarted a healthy stream, and an agent as loaded did not answer `stop` in 10 s.
        self._streaming_at: tuple[float, float | None] | None = None
        self._session_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"link-{node.name}", daemon=True)

    def start(self) -> None:
        """Start the link's thread; when this machine cannot start one, the node is reported down with why.

        Then `start_failed` is set, for the owner to call `start` again later (`Collector.retry_starts`): a link
        never started never reconnects on its own, so its node stayed down after the machine had threads again.
        """
        raise_open_file_limit()  # a link holds a socket for as long as it runs
        try:
            self._thread.start()
        except RuntimeError as exc:  # the task limit: the node is fine, this machine is out of threads
            self.start_failed = True
            self._sink.link_failed(self.node.name, as_node_error(self.node.name, exc))
        else:
            self.start_failed = False

    def stop(self, retire: bool = False) -> None:
        """Ask the link to close its session and end (returns at once; see `join`).

        A link `retire`d (replaced by a reload's new link) hands over no more samples or failures while it closes: a
        last sample of its stream, arriving while the new link still connects, would date the node's silence from
        it, and a failure would judge the node for what breaks as we close it.
        """
        self._retired = self._retired or retire
        self._stop.set()
        self._wake.set()

    def abort(self) -> None:
        """Stop, and close the link's connection now: its agent is ended, so a request waiting on it fails at once.

        For a stop that took too long (`Collector.stop`): an agent that does not answer `stop` held its link 10 s,
        and the controller's Ctrl-C for as long. Called from another thread; a link still connecting has nothing to
        close yet (the connector closes what comes up after the stop: `transport_connector`).
        """
        self.stop()
        with self._session_lock:
            transport = self._transport
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    @property
    def alive(self) -> bool:
        """Whether the link's thread is still running (False once it ended, or if it never started)."""
        return self._thread.is_alive()

    def set_interval(self, interval_s: float, slow_interval_s: float | None) -> None:
        """Stream at a new interval: a connected link restarts its stream on its session, the others connect with it."""
        self.interval_s, self.slow_interval_s = interval_s, slow_interval_s
        if self._stall_given is None:
            self.stall_s = _stall_for(interval_s)
        self._wake.set()

    def join(self, timeout: float) -> None:
        """Wait for the link's thread to end (at once if it never started)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    @property
    def session(self) -> AgentSession | None:
        """The streaming session, for requests of other threads (a power cap); None while not connected."""
        with self._session_lock:
            return self._session

    def _set_session(self, session: AgentSession | None) -> None:
        with self._session_lock:
            self._session = session

    def _set_transport(self, transport: NodeTransport | None) -> None:
        with self._session_lock:
            self._transport = transport

    def _on_sample(self, sample: NodeSample) -> None:
        if self._retired:
            return
        heard_at = time.monotonic()
        self._silence.heard(heard_at)
        self._got_sample.set()
        self._sink.offer(sample)
        if self._clock_probe.sample_seen(sample.time, time.time(), heard_at):
            self._wake.set()  # late, or a node behind: the link's thread asks (never this reader thread)

    def _on_missed(self, count: int) -> None:
        """The agent dropped `count` samples while its output waited for us: counted where the sink counts them."""
        if not self._retired:
            self._sink.samples_missed(self.node.name, count)

    def _on_sample_error(self, error: NodeError) -> None:
        """The agent could not take a sample: the node is reported failing with why; its silence goes on counting."""
        if self._retired:
            return
        self._silence.sample_failed(error, time.monotonic())
        self._sink.sample_failed(self.node.name, error)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            if self._session_once() and time.monotonic() - started >= HEALTHY_SESSION_S:
                attempt = 0  # only a session that lasted resets the backoff: a flapping node backs off too
            if self._stop.is_set():
                break
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            log.debug("%s: reconnecting in %.1f s", self.node.name, delay)
            self._stop.wait(delay)

    def _session_once(self) -> bool:
        """Connect, stream until something breaks or we are stopped; True if samples flowed."""
        self._got_sample.clear()
        self._silence.session_started()
        self._clock_probe.new_agent()  # maybe one that answers `clock`
        self.connecting = True
        try:
            transport, session = self._connect(self.node)
        except Exception as exc:
            self.connecting = False
            self._failed(exc)
            return False
        self._set_transport(transport)
        try:
            if not self._retired:
                self._sink.link_connected(self.node.name)  # before `connects` counts it, which tests wait on
            self.connects += 1
            self._silence.connected(time.monotonic())
            stream: int | None = None
            if not self._stop.is_set():  # stopped while connecting: start nothing more, close it
                self._wake.clear()  # streamed at the interval of now
                self._set_session(session)  # before the stream: its first sample shows the node up, ready for requests
                stream = self._stream(session, None)
            self.connecting = False
            session.wake_on_failure(self._wake)  # so the wait below sleeps until the session could stall
            while not self._stop.is_set():
                woke = self._wake.wait(self._silence.until_stall(self.stall_s, time.monotonic()))
                if session.failure is not None:
                    raise session.failure
                if woke and not self._stop.is_set():
                    self._wake.clear()
                    if self._streaming_at != (self.interval_s, self.slow_interval_s):  # not a stale wake
                        stream = self._stream(session, stream)
                    if self._clock_probe.due:
                        self._ask_clock(session)
                now = time.monotonic()
                silent = now - self._heard()
                if silent > self.stall_s:
                    raise self._silence.stalled(self.node.name, silent, self.stall_s, now)
        except Exception as exc:
            self._failed(exc)
        finally:
            self.connecting = False
            self._set_session(None)
            _close_quietly(session, transport)
            self._set_transport(None)
        return self._got_sample.is_set()

    def _heard(self) -> float:
        """When the node was last heard, a stall of the controller after it excused (`LinkSilence.last_heard`)."""
        return self._silence.last_heard()

    def _failed(self, exc: Exception) -> None:
        """Report a failure, unless the link is retired: what breaks while it closes is not the node's."""
        if not self._retired:
            self._sink.link_failed(self.node.name, as_node_error(self.node.name, exc))

    def _ask_clock(self, session: AgentSession) -> None:
        """Ask the agent for its time and tell the sink; an agent without `clock` is judged on its samples alone.

        A reply that does not come in time bounds nothing and breaks nothing: a silent link is the stall's to judge.
        """
        self._clock_probe.asking(time.monotonic())
        asked_at = time.time()
        try:
            node_time = session.request("clock", timeout=self.stream_timeout_s).get("time")
        except UsageError:  # an agent older than `clock`
            self._clock_probe.cannot_answer()
            return
        except NodeError:
            return
        if isinstance(node_time, bool) or not isinstance(node_time, (int, float)) or not math.isfinite(node_time):
            return  # no time an agent of ours sends
        if not self._retired:
            self._sink.clock_bounded(self.node.name, float(node_time), asked_at)

    def _stream(self, session: AgentSession, running: int | None) -> int:
        """Start streaming at the link's interval, stopping the stream `running` first; returns the new stream's id."""
        timeout, slow = self.stream_timeout_s, self.slow_interval_s
        self._streaming_at = (self.interval_s, slow)
        if running is not None:
            stopped = session.request("stop", timeout=timeout, stream=running)
            if missed := missed_count(stopped.get("missed")):  # the old stream's samples it gave up
                self._on_missed(missed)
            self._silence.restarted(time.monotonic())  # the new stream's first sample is an interval away
        return session.stream(
            self.interval_s,
            self._on_sample,
            timeout=timeout,
            slow_interval_s=slow,
            on_error=self._on_sample_error,
            on_missed=self._on_missed,
        )


def _stall_for(interval_s: float) -> float:
    return max((MISSED_FOR_DOWN + 0.5) * interval_s, STALL_MIN_S)


def _close_quietly(session: AgentSession, transport: NodeTransport) -> None:
    """Close the agent (asking it to exit when it still answers) and the transport, never raising."""
    with contextlib.suppress(Exception):
        session.close(timeout=1.0)
    with contextlib.suppress(Exception):
        transport.close()
