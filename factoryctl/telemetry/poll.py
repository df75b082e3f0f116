"""One-shot sweeps: reach every node in parallel, take one sample from its agent, and gather failures per node.

This is what `nodes list`, `gpus` and `telemetry collect --once` do when no live controller is writing the store:
a bounded pool, so one slow or dead node never blocks the others, and partial results plus classified errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.transport.base import NodeTransport

DEFAULT_FANOUT = 64
T = TypeVar("T")


@dataclass(frozen=True)
class PollResult:
    """Samples of the nodes that answered (in inventory order) and one error per node that did not."""

    samples: list[NodeSample]
    errors: list[NodeError]


def open_transport(node: NodeSpec, config: FactoryConfig, timeout: float = 10.0) -> NodeTransport:
    """The transport the inventory names for this node (never inferred from the address)."""
    if node.transport == "local":
        from factoryctl.transport.local import LocalTransport

        return LocalTransport(node, config.name, config.state_dir)
    from factoryctl.transport.ssh import open_ssh_transport

    return open_ssh_transport(node, config, timeout)


def down_sample(node: str, error: NodeError) -> NodeSample:
    """The row shown for a node that could not be sampled: down, or degraded when it answered but its driver did not."""
    state = "degraded" if error.kind == "driver" else "down"
    return NodeSample(node=node, time=time.time(), state=state, error=error.kind, message=error.message)


def as_node_error(node: str, exc: BaseException) -> NodeError:
    """Classify any failure on one node; unexpected ones become `agent` errors rather than crashing the sweep."""
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, FactoryError):
        return NodeError(node, "agent", exc.message, exc.hint)
    return NodeError(node, "agent", f"{node}: {type(exc).__name__}: {exc}.", "rerun with --debug for details.")


def fan_out(
    nodes: Iterable[NodeSpec], work: Callable[[NodeSpec], T], fanout: int = DEFAULT_FANOUT
) -> list[tuple[NodeSpec, T | NodeError]]:
    """Run `work` on every node with at most `fanout` in flight; results in input order, failures as NodeError."""
    node_list = list(nodes)

    def guarded(node: NodeSpec) -> T | NodeError:
        try:
            return work(node)
        except Exception as exc:
            return as_node_error(node.name, exc)

    if not node_list:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(fanout, len(node_list))), thread_name_prefix="fanout") as pool:
        return list(zip(node_list, pool.map(guarded, node_list), strict=True))


def sample_node(node: NodeSpec, config: FactoryConfig, timeout: float) -> NodeSample:
    """Start the node's agent, take one sample, and shut it down."""
    transport = open_transport(node, config, timeout)
    try:
        session = transport.start_agent(timeout)
        try:
            return session.sample(timeout)
        finally:
            session.close()
    finally:
        transport.close()


def poll_nodes(
    config: FactoryConfig, nodes: Iterable[NodeSpec], timeout: float = 15.0, fanout: int = DEFAULT_FANOUT
) -> PollResult:
    """One sample from each node, in parallel."""
    samples: list[NodeSample] = []
    errors: list[NodeError] = []
    for node, outcome in fan_out(nodes, lambda n: sample_node(n, config, timeout), fanout):
        if isinstance(outcome, NodeError):
            errors.append(outcome)
            samples.append(down_sample(node.name, outcome))
        else:
            samples.append(outcome)
    return PollResult(samples, errors)
