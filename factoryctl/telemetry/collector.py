"""The collection loop: one `NodeLink` per inventory node feeding one `StoreWriter`, reconfigurable while running.

`apply(config)` is how a SIGHUP reload lands: links of removed nodes are closed, new nodes get links, nodes whose
inventory entry changed are reconnected, and an interval change restarts every stream on its session (never a
reconnect of the fleet). Waiting for the old links to end and starting the new ones is done on a thread of its own,
so the controller's loop goes on writing its figures and checking its files. A node reconnected or re-streamed is
not judged by its silence until it streams again or fails (`StoreWriter.awaiting_stream`), so it is never judged by
the new interval before its stream has switched. Rollups and retention run from `maintain()`, which the controller
calls on a timer.

A controller runs for months, through upgrades of factoryctl: it imports all of its code when it starts
(`load_all`, in its command), and a connect failing to load factoryctl's own code all the same (its files changed
under it) is the controller's failure, never the node's (`stale`, `StaleCode`): said once at error level, no node
is judged from then on (every node was recorded down for it), and the controller ends (status 1) for its service
manager to start it on the new files.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig
from factoryctl.config_schema import parse_duration
from factoryctl.model.folding import fold_nodes
from factoryctl.model.inventory import NodeSpec
from factoryctl.stale_code import StaleCode, StaleCodeError
from factoryctl.store.samples import steps_in_force
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, Connector, NodeLink, transport_connector
from factoryctl.telemetry.stall_watch import StallWatch
from factoryctl.telemetry.writer import StoreWriter

if TYPE_CHECKING:
    from factoryctl.transport.base import NodeTransport
    from factoryctl.transport.session import AgentSession

log = logging.getLogger("factoryctl.telemetry")

AGENT_START_TIMEOUT_S = 20.0
#: How long stopping waits for every link to close on its own (all asked at once: agents answer `shutdown` in well
#: under a second); the links still open then have their connections closed, and are waited for this long again.
STOP_WAIT_S = 3.0


class Collector:
    """Keeps every inventory node streaming into the store."""

    def __init__(
        self,
        config: FactoryConfig,
        store: Store,
        connector: Callable[[FactoryConfig], Connector] | None = None,
        rng: random.Random | None = None,
        stall_s: float | None = None,
    ) -> None:
        self.config = config
        self._stall_s = stall_s
        self.store = store
        self._stopping = threading.Event()  # set by `stop`: a connection coming up after it starts no agent
        self._make_connector = connector or (
            lambda c: transport_connector(c, AGENT_START_TIMEOUT_S, stop=self._stopping)
        )
        self._rng = rng or random.Random()
        self.links: dict[str, NodeLink] = {}
        self._past_connects = 0  # connects of links already closed
        self._relinking: threading.Thread | None = None  # a reload's: ends old links, then starts the new ones
        self._retiring: list[NodeLink] = []  # the old links it waits for (a stop stops them with the others)
        #: Tells a stall of the controller itself (SIGSTOP, swapping, a paused VM) from its nodes' silence.
        self.stall_watch = StallWatch(config.interval_s)
        self.writer = StoreWriter(
            store,
            config.interval_s,
            slow_interval_s=config.settings.controller.slow_interval_s,
            stall_watch=self.stall_watch,
        )
        #: factoryctl's files changed under the controller (an upgrade): said once; it stops on it (`failure`).
        self.stale = StaleCode("controller", self._said_stale)

    def _connector(self, config: FactoryConfig) -> Connector:
        """The links' connector, its failures to load factoryctl's own code noticed before a link hears of them.

        Making it may load code too (a reload's first SSH node): such a failure is noticed the same way, and its
        links are given a connector that fails (judged by no one), rather than a reload ending the controller with a
        traceback.
        """
        try:
            connect = self._make_connector(config)
        except Exception as exc:
            if not self.stale.notice(exc):
                raise
            connect = _failing(self.stale.message)
        return self.stale.noticing(connect)

    def _said_stale(self, detail: str) -> None:
        """No node is judged from now on (the link's failure that follows is not the node's), and it is said once."""
        self.writer.begin_shutdown()
        log.error("%s; no node is judged by it: the controller stops (status 1) to be started on the new files", detail)

    @property
    def failure(self) -> str | None:
        """Why the collector cannot go on (factoryctl's files changed under it), for the controller to stop; or None."""
        return self.stale.message if self.stale.failure is not None else None

    def start(self) -> None:
        """Start writing, then connect to every node.

        The writer comes first: starting 2,000 links takes about 20 s, and the first nodes' samples waited that long
        for a writer started after the last link (`stop` still closes every link before the writer's last flush).
        """
        self.writer.set_nodes(self.config.nodes)
        self.stall_watch.start()
        self.writer.start()
        connect = self._connector(self.config)
        for node in self.config.nodes.values():
            self._start_link(node, connect)
        count = len(self.links)
        log.info("collecting from %d node%s every %g s", count, "" if count == 1 else "s", self.config.interval_s)

    def _start_link(self, node: NodeSpec, connect: Connector) -> None:
        self._new_link(node, connect).start()

    def _new_link(self, node: NodeSpec, connect: Connector) -> NodeLink:
        link = NodeLink(
            node,
            self.config.interval_s,
            connect,
            self.writer,
            Backoff.for_factory(self.config),
            self._rng,
            stall_s=self._stall_s,
            slow_interval_s=self.config.settings.controller.slow_interval_s,
            stall_watch=self.stall_watch,
        )
        self.links[node.name] = link
        return link

    def apply(self, config: FactoryConfig) -> dict[str, list[str]]:
        """Move to a new configuration; returns the nodes added, removed, reconnected and given the new interval.

        Returns once the old links are asked to stop and the new ones are made; a thread waits for the old ones to
        end and then starts the new ones (`settle` waits for it).
        """
        self.settle()  # the previous reload's links first: one agent per node
        old, self.config = self.config, config
        interval_changed = (
            config.interval_s != old.interval_s
            or config.settings.controller.slow_interval_s != old.settings.controller.slow_interval_s
        )
        removed = [n for n in self.links if n not in config.nodes]
        added = [n for n in config.nodes if n not in self.links]
        changed = [n for n in config.nodes if n in self.links and self.links[n].node != config.nodes[n]]
        retimed = [n for n in config.nodes if n in self.links and n not in changed] if interval_changed else []
        self.writer.awaiting_stream(changed + retimed)  # their silence from now on is the reload's
        stopping = self._retiring = self._ask_to_stop(removed + changed, retire=True)
        self.writer.set_interval(config.interval_s, config.settings.controller.slow_interval_s)
        self.stall_watch.set_interval(config.interval_s)
        for name in retimed:
            self.links[name].set_interval(config.interval_s, config.settings.controller.slow_interval_s)
        self.writer.set_nodes(config.nodes)
        connect = self._connector(config)
        new = [self._new_link(config.nodes[name], connect) for name in added + changed]

        def relink() -> None:
            _join_links(stopping)
            self.writer.awaiting_stream(changed)  # again: from when their new links start
            for link in new:
                link.start()

        self._relinking = threading.Thread(target=relink, name="reload-links", daemon=True)
        try:
            self._relinking.start()
        except RuntimeError:  # out of threads: do it here
            self._relinking = None
            relink()
        return {"added": added, "removed": removed, "reconnected": changed, "retimed": retimed}

    def settle(self, timeout: float = 30.0) -> None:
        """Wait for the last reload's links to be swapped (at once when none is under way)."""
        if self._relinking is not None:
            self._relinking.join(timeout)
            self._relinking = None

    def _ask_to_stop(self, names: list[str], retire: bool = False) -> list[NodeLink]:
        links = [self.links.pop(name) for name in names]
        for link in links:
            link.stop(retire)
            self._past_connects += link.connects
        return links

    def _stop_links(self, names: list[str], retiring: list[NodeLink] | None = None) -> None:
        """Stop these links within about twice `STOP_WAIT_S` in all, however many there are and whatever their agents do.

        The wait is shared by all the links, never one per link, so stopping a large fleet with unresponsive agents is
        still bounded.
        """
        links = self._ask_to_stop(names) + [link for link in retiring or [] if link.alive]
        left = _join_links(links, STOP_WAIT_S, each_s=0.0)
        if not left:
            return
        log.info("%s did not close within %g s: closing their connections", _named(left), STOP_WAIT_S)
        for link in left:
            _in_parallel(link.abort)
        left = _join_links(left, STOP_WAIT_S, each_s=0.0)
        if left:  # connecting (an SSH handshake, an agent not started yet): nothing to close but what comes up late
            log.warning("%s still connecting after %g s: not waited for", _named(left), 2 * STOP_WAIT_S)

    def retry_starts(self) -> int:
        """Start again the links this machine had no thread for (the controller's timer calls it); how many."""
        failed = [link for link in self.links.values() if link.start_failed]
        for link in failed:
            link.start()
        return len(failed)

    def maintain(self, now: float | None = None) -> tuple[int, int, int]:
        """Roll up finished minutes and apply retention; returns (rollup rows, raw deleted, rollups deleted).

        Retention allows for the forward steps the writer saw the wall clock take: rows stamped before a step are
        pruned when they are old, not when the stepped clock says so; a step every row before it is past retention
        for is forgotten (the writer keeps the others in the store, for a restart).
        """
        settings = self.config.settings.controller
        rolled = self.store.rollup(now)
        steps = self.writer.clock_steps()
        raw_retention = settings.raw_kept_s
        longest = max(raw_retention, parse_duration(settings.rollup_retention))  # either may be the longer
        raw, rollups = self.store.prune(raw_retention, parse_duration(settings.rollup_retention), now, steps)
        kept = steps_in_force(now if now is not None else time.time(), longest, steps)
        self.writer.forget_steps(steps[: len(steps) - len(kept)])
        return rolled, raw, rollups

    def stop(self) -> None:
        """Close every link (agents are asked to exit) and write what is left, without judging nodes down for it."""
        self.writer.begin_shutdown()
        self._stopping.set()
        # a reload's old links still closing are stopped with the others, not waited for first (up to 30 s); the new
        # links it would start next are stopped already, and end as they start
        self._stop_links(list(self.links), self._retiring)
        self.writer.stop()
        self.stall_watch.stop()

    def session(self, node: str) -> AgentSession | None:
        """The node's streaming agent session, for another thread's requests (the jobs loop's); None if not linked.

        Read while links may be replaced (a reload): a dict read is atomic, and a session that closes under its
        user fails that request as any session would.
        """
        link = self.links.get(node)
        return link.session if link is not None else None

    def up_count(self) -> int:
        """How many nodes are up now."""
        return self.writer.up_count()

    def stats(self) -> dict[str, Any]:
        """The writer's figures plus link counts."""
        return {
            **self.writer.stats(),
            "nodes": len(self.config.nodes),
            "up": self.up_count(),
            "connects": self._past_connects + sum(link.connects for link in self.links.values()),
        }


def _failing(message: str) -> Connector:
    """A connector whose every connect fails with `StaleCodeError(message)`."""

    def connect(node: NodeSpec) -> tuple[NodeTransport, AgentSession]:
        raise StaleCodeError(message)

    return connect


def _join_links(links: list[NodeLink], timeout_s: float = 10.0, each_s: float = 0.1) -> list[NodeLink]:
    """Wait for stopped links to end, `timeout_s` for all of them (then `each_s` each); returns those still running."""
    deadline = time.monotonic() + timeout_s
    for link in links:
        link.join(max(each_s, deadline - time.monotonic()))
    return [link for link in links if link.alive]


def _in_parallel(call: Callable[[], None]) -> None:
    """Run `call` on a thread of its own (here, when this machine has no thread left)."""
    try:
        threading.Thread(target=call, name="link-abort", daemon=True).start()
    except RuntimeError:
        call()


def _named(links: list[NodeLink]) -> str:
    """`n[001-200] (200)` for a log line (one name alone for one)."""
    names = [link.node.name for link in links]
    return names[0] if len(names) == 1 else f"{fold_nodes(names)} ({len(names)})"
