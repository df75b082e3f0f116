"""One short agent session per node, in parallel: how the executor asks nodes about, and acts on, their ranks.

Each node gets one session for all its requests of a pass (the launches of every gang that starts there, the
`ranks` of every job on it), so a pass costs one login per node it touches, never one per rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.telemetry.poll import agent_session, check_agent_cache
from factoryctl.transport.fanout import DEFAULT_FANOUT, fan_out
from factoryctl.transport.hints import hinted
from factoryctl.transport.session import AgentSession

T = TypeVar("T")

#: Seconds a node has to answer one request of the executor (connect, start the agent, answer).
NODE_TIMEOUT_S = 15.0


def on_nodes(
    config: FactoryConfig,
    names: Mapping[str, object] | list[str],
    work: Callable[[AgentSession, str], T],
    timeout: float = NODE_TIMEOUT_S,
) -> dict[str, T | NodeError]:
    """`work(session, node)` on each named node's agent, at most DEFAULT_FANOUT at once; errors hinted, by node.

    A node no longer in factory.yaml (a job placed before it was removed) is an `agent` error: nothing can reach it.
    """
    nodes = [config.nodes[name] for name in names if name in config.nodes]
    gone: dict[str, T | NodeError] = {
        name: NodeError(name, "agent", f"{name} is no longer in {config.path or 'factory.yaml'}")
        for name in names
        if name not in config.nodes
    }
    check_agent_cache(nodes)

    def one(node_name: str) -> T:
        with agent_session(config.nodes[node_name], config, timeout) as session:
            return work(session, node_name)

    outcomes = fan_out(nodes, lambda spec: one(spec.name), DEFAULT_FANOUT)
    return gone | {spec.name: hinted(o) if isinstance(o, NodeError) else o for spec, o in outcomes}
