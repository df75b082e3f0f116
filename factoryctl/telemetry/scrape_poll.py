"""The nodes' samples for `metrics serve` when no controller writes the store: polled aside, never waited past a deadline.

A scrape must end within Prometheus's scrape timeout or the whole target fails, so the poll runs on threads of its
own: a scrape waits for it until its own deadline only, and a node that has not answered by then is given its answer
from the poll before, or else left out (no series: unknown, not down, so an exporter restart raises no alert on
`factoryctl_node_up == 0`), while the other nodes' data is served. The poll goes
on past the deadline, so a late answer serves the next scrape; scrapes arriving while a poll runs share it (never a
second poll of the same nodes), and a new one starts only `min_interval_s` after the last one ended, so a fast
scraper cannot turn into an SSH storm. Each node's sampling is bounded by `timeout` (every transport step
included), so every poll ends. A node's sampling failing to load factoryctl's own code (its files changed under the
running process: `StaleCode`) answers no node: the scrapes fail instead (`StaleCodeError`), never 27 nodes down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from factoryctl.config import FactoryConfig
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.stale_code import StaleCode
from factoryctl.telemetry.poll import DEFAULT_FANOUT, as_node_error, check_agent_cache, down_sample, fan_out


@dataclass
class _Round:
    """One poll of every node: the answers so far (a down sample for a node that failed), and when it ended."""

    answers: dict[str, NodeSample] = field(default_factory=dict)
    ended: float | None = None  # time.monotonic() once every node answered or failed


class BackgroundPoll:
    """Polls of `config`'s nodes, shared by the scrapes that arrive while one runs (see the module docstring)."""

    def __init__(
        self, config: FactoryConfig, timeout: float, min_interval_s: float, stale: StaleCode | None = None
    ) -> None:
        self.config = config
        #: factoryctl's files changed under this process (an upgrade): its own failure, never a node's down sample.
        self.stale = stale or StaleCode("metrics serve")
        self.timeout = timeout
        self.min_interval_s = min_interval_s
        self._changed = threading.Condition()
        self._current: _Round | None = None
        self._previous: _Round | None = None  # the last poll that ended before `_current` began

    def samples(self, wait_s: float) -> list[NodeSample]:
        """A sample of every node heard from, in inventory order, after waiting at most `wait_s` s for the poll.

        A poll starts when none runs and the last one ended `min_interval_s` ago or more. A node the poll has not
        heard from yet has its answer from the poll before, if there was one; else it is left out until it answers
        or its poll gives up on it (then it is down, with the poll's reason).
        A node that was down in the poll before is not waited for: a hung one would cost every scrape its whole wait.
        """
        deadline = time.monotonic() + wait_s
        self.stale.check()
        with self._changed:
            current = self._current_round()
            previous = self._previous.answers if self._previous is not None else {}
            awaited = [node for node in self.config.nodes if node not in previous or previous[node].state != "down"]
            while (
                self.stale.failure is None
                and current.ended is None
                and any(node not in current.answers for node in awaited)
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            answers = {**previous, **current.answers}
        self.stale.check()  # noticed while this scrape waited: no node is answered with it
        return [answers[name] for name in self.config.nodes if name in answers]

    def _current_round(self) -> _Round:
        """The poll running now, or the last one while it is fresh enough, or a new one (call with the lock held)."""
        current = self._current
        if current is not None and (current.ended is None or time.monotonic() - current.ended < self.min_interval_s):
            return current
        nodes = list(self.config.nodes.values())
        check_agent_cache(nodes)  # a bad $FACTORYCTL_REMOTE_CACHE fails this scrape (503), not every node
        fresh = _Round()
        self._previous, self._current = current, fresh
        threading.Thread(target=self._run, args=(fresh, nodes), name="metrics-poll", daemon=True).start()
        return fresh

    def _run(self, poll: _Round, nodes: Sequence[NodeSpec]) -> None:
        """Sample every node (at most DEFAULT_FANOUT at once), telling waiting scrapes of each answer as it comes."""
        try:
            fan_out(nodes, lambda node: self._sample(poll, node), DEFAULT_FANOUT)
        finally:  # always ended: a poll that never ended would stop every later poll
            with self._changed:
                poll.ended = time.monotonic()
                self._changed.notify_all()

    def _sample(self, poll: _Round, node: NodeSpec) -> None:
        from factoryctl.telemetry.poll import sample_node  # looked up per call: tests stand in for the node

        try:
            sample = sample_node(node, self.config, self.timeout)
        except Exception as exc:  # classified as every poll's (fan_out's) failures are: the node's down sample
            if self.stale.notice(exc):  # but factoryctl's own code failing to load is this process's failure
                with self._changed:
                    self._changed.notify_all()
                return
            sample = down_sample(node.name, as_node_error(node.name, exc))
        with self._changed:
            poll.answers[node.name] = sample
            self._changed.notify_all()
