"""The agent sessions `power set / reset / apply` read a node's GPUs through, kept open for its change.

Over SSH an agent session is a login: a node is read (for the all-or-nothing range check) and then changed in one
session rather than two. Kept apart from limits.py, which decides what is asked and records it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from factoryctl.config import FactoryConfig
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.poll import agent_session
from factoryctl.transport.fanout import fan_out
from factoryctl.transport.session import AgentSession


class HeldSessions:
    """The agent sessions that read a node's GPUs, kept open for its change: one login per node, not two.

    `close_all` closes those never taken (a refused request, an interrupt), in parallel; a read that finishes after
    it (an interrupted fan-out's thread) closes its own session instead of keeping it.
    """

    def __init__(self, config: FactoryConfig, timeout: float) -> None:
        self.config, self.timeout = config, timeout
        self._held: dict[str, tuple[NodeSpec, contextlib.ExitStack, AgentSession]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def read_only(self, node: NodeSpec) -> NodeSample:
        """The node's sample, from a session closed at once (its change starts another)."""
        with agent_session(node, self.config, self.timeout) as session:
            return session.sample(self.timeout)

    def read_and_hold(self, node: NodeSpec) -> NodeSample:
        """The node's sample, from a session kept open for its change (`session_for`)."""
        with contextlib.ExitStack() as stack:
            session = stack.enter_context(agent_session(node, self.config, self.timeout))
            sample = session.sample(self.timeout)
            with self._lock:
                if not self._closed:
                    self._held[node.name] = (node, stack.pop_all(), session)
            return sample

    def held_first(self, nodes: Sequence[NodeSpec]) -> list[NodeSpec]:
        """`nodes`, those with a held session first: a fan-out then starts them before any node that opens one."""
        return sorted(nodes, key=lambda node: node.name not in self._held)

    @contextlib.contextmanager
    def session_for(self, node: NodeSpec) -> Iterator[AgentSession]:
        """The node's held session (closed after the block), else a new one."""
        with self._lock:
            held = self._held.pop(node.name, None)
        if held is None:
            with agent_session(node, self.config, self.timeout) as session:
                yield session
            return
        _, stack, session = held
        with stack:
            yield session

    def release(self, node: NodeSpec) -> None:
        """Close the node's held session, if one is held (its agent asked to exit); none is opened for it."""
        with self._lock:
            held = self._held.pop(node.name, None)
        if held is not None:
            held[1].close()

    def close_all(self) -> None:
        """Close every session still held, in parallel (each asks its agent to exit); none is kept after this."""
        with self._lock:
            self._closed = True
            left, self._held = list(self._held.values()), {}
        if left:
            stacks = {node.name: stack for node, stack, _ in left}
            fan_out([node for node, _, _ in left], lambda node: stacks[node.name].close(), max(len(left), 1))
