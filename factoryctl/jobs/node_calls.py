"""One agent session per node for a pass's requests, in parallel: how the executor asks nodes about, and acts on, ranks.

Each node gets one session for all its requests of a step (the launches of every gang that starts there, the `ranks`
of every job on it), never one per rank. In the controller, that session is the node's own streaming one
(`using_sessions`, given the collector's): a pass then costs no SSH login at all, as DESIGN.md's one persistent
connection per node wants; elsewhere (`sched tick`, `jobs cancel`) a short session is opened and closed per node.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import TypeVar

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.telemetry.poll import SessionSource, check_agent_cache, held_or_own_session
from factoryctl.transport.fanout import DEFAULT_FANOUT, fan_out
from factoryctl.transport.hints import hinted
from factoryctl.transport.session import AgentSession

T = TypeVar("T")

#: Seconds a node has to answer one request of the executor (connect, start the agent, answer).
NODE_TIMEOUT_S = 15.0

_SOURCE: ContextVar[SessionSource | None] = ContextVar("factoryctl_jobs_sessions", default=None)


@contextlib.contextmanager
def using_sessions(source: SessionSource) -> Iterator[None]:
    """Within the block, this thread's node requests use `source`'s open session of a node when it has one."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def on_nodes(
    config: FactoryConfig,
    names: Mapping[str, object] | list[str],
    work: Callable[[AgentSession, str], T],
    timeout: float = NODE_TIMEOUT_S,
    held: bool = True,
) -> dict[str, T | NodeError]:
    """`work(session, node)` on each named node's agent, at most DEFAULT_FANOUT at once; errors hinted, by node.

    A node no longer in factory.yaml (a job placed before it was removed) is an `agent` error: nothing can reach it.
    `held=False` opens a session of its own even where a held one is given: for a slow request (a launch waits up
    to 30 s for its rank), which would hold the link's own requests behind it (the agent answers one at a time).
    """
    nodes = [config.nodes[name] for name in names if name in config.nodes]
    gone: dict[str, T | NodeError] = {
        name: NodeError(name, "agent", f"{name} is no longer in {config.path or 'factory.yaml'}")
        for name in names
        if name not in config.nodes
    }
    source = _SOURCE.get() if held else None  # read on this thread: the fan-out's threads do not inherit it
    check_agent_cache(nodes)

    def one(node_name: str) -> T:
        held_session = source(node_name) if source is not None else None
        with held_or_own_session(config.nodes[node_name], config, timeout, held_session) as session:
            return work(session, node_name)

    outcomes = fan_out(nodes, lambda spec: one(spec.name), DEFAULT_FANOUT)
    return gone | {spec.name: hinted(o) if isinstance(o, NodeError) else o for spec, o in outcomes}
