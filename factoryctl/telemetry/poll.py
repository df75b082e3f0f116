"""One-shot sweeps: reach every node in parallel, take one sample from its agent, and gather failures per node.

This is what `nodes list`, `gpus` and `telemetry collect --once` do when no live controller is writing the store:
a bounded pool, so one slow or dead node never blocks the others, and partial results plus classified errors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.health import NodeHealth
from factoryctl.transport.base import NodeTransport
from factoryctl.transport.fanout import DEFAULT_FANOUT, FanOut, Pending, as_node_error, fan_out
from factoryctl.transport.hints import hinted
from factoryctl.transport.session import AgentSession

__all__ = [
    "DEFAULT_FANOUT",
    "PollResult",
    "as_node_error",
    "check_agent_cache",
    "down_sample",
    "fan_out",
    "held_or_own_session",
    "open_transport",
    "poll_nodes",
    "sample_node",
]


@dataclass(frozen=True)
class PollResult:
    """Samples of the nodes that answered (in inventory order) and one error per node that did not.

    `last_seen`: when each node that did not answer last sent a sample, where that is known (a live controller's
    store knows it; a poll does not).
    """

    samples: list[NodeSample]
    errors: list[NodeError]
    last_seen: dict[str, float] = field(default_factory=dict)


def open_transport(node: NodeSpec, config: FactoryConfig, timeout: float = 10.0) -> NodeTransport:
    """The transport the inventory names for this node (never inferred from the address)."""
    if node.transport == "local":
        from factoryctl.transport.local import LocalTransport

        return LocalTransport(node, config.name, config.state_dir)
    from factoryctl.transport.ssh import open_ssh_transport

    return open_ssh_transport(node, config, timeout)


def check_agent_cache(nodes: Iterable[NodeSpec]) -> None:
    """Before agents start on `nodes`: a bad `$FACTORYCTL_REMOTE_CACHE` is one config error (exit 3).

    Raised here once instead of once per node; only SSH nodes use it, and `exec` never calls this.
    """
    ssh = [node for node in nodes if node.transport == "ssh"]
    if ssh:
        from factoryctl.transport.agent_cache import check_remote_cache_env

        check_remote_cache_env(ssh)


def down_sample(node: str, error: NodeError, interval_s: float = 1.0) -> NodeSample:
    """The row shown for a node that could not be sampled, in the state the controller's judge gives it.

    One rule for both (`NodeHealth`): a node a command has no good sample of is judged as the controller judges a
    node it never saw up, which is `down` whatever failed, its driver (or missing Python) included.
    """
    now = time.time()
    judged = NodeHealth(node, interval_s).failed(now, error.kind, error.message)
    state = judged.state if judged is not None else "down"
    return NodeSample(node=node, time=now, state=state, error=error.kind, message=error.message)


@contextlib.contextmanager
def agent_session(node: NodeSpec, config: FactoryConfig, timeout: float) -> Iterator[AgentSession]:
    """The node's agent for one short exchange: transport opened, agent started, both closed afterwards."""
    transport = open_transport(node, config, timeout)
    try:
        session = transport.start_agent(timeout)
        try:
            yield session
        finally:
            session.close()
    finally:
        transport.close()


#: Where a node's open session comes from, if anywhere (the controller's links); None: open one per node and step.
SessionSource = Callable[[str], "AgentSession | None"]


@contextlib.contextmanager
def held_or_own_session(
    node: NodeSpec, config: FactoryConfig, timeout: float, held: AgentSession | None
) -> Iterator[AgentSession]:
    """`held` (a node's open session: the controller's link) while it is healthy, else a short one of its own.

    How the controller's scheduling passes and power loop reach a node: no login where the link is up.
    """
    if held is not None and held.failure is None:
        yield held
        return
    with agent_session(node, config, timeout) as session:
        yield session


def sample_node(node: NodeSpec, config: FactoryConfig, timeout: float) -> NodeSample:
    """Start the node's agent, take one sample, and shut it down."""
    with agent_session(node, config, timeout) as session:
        return session.sample(timeout)


def poll_nodes(
    config: FactoryConfig,
    nodes: Iterable[NodeSpec],
    timeout: float = 15.0,
    fanout: int = DEFAULT_FANOUT,
    progress: Callable[[int, int], None] | None = None,
    stopped: Callable[[PollResult], None] | None = None,
) -> PollResult:
    """One sample from each node, in parallel (`progress(answered, total)` told while it waits, if given).

    Each failure gets the hint of the one table (`hinted`), as a reader of the controller's store gives it. A stop
    (Ctrl-C, SIGTERM, SIGHUP) while it waits goes on out of it, after `stopped`, if given, was told the nodes that
    had answered by then (`telemetry collect` stores them): the others are left out, neither up nor down.
    """
    nodes = list(nodes)
    check_agent_cache(nodes)
    sweep = FanOut(nodes, lambda n: sample_node(n, config, timeout), fanout)
    try:
        outcomes = sweep.run(progress)
    except BaseException:
        if stopped is not None:
            answered = [(node, o) for node, o in sweep.settle(0) if not isinstance(o, Pending)]
            stopped(_gathered(config, answered))
        raise
    return _gathered(config, outcomes)


def _gathered(config: FactoryConfig, outcomes: Iterable[tuple[NodeSpec, NodeSample | NodeError]]) -> PollResult:
    """The poll's result from each node's outcome: its sample, or its error (hinted) and the row of a down node."""
    samples: list[NodeSample] = []
    errors: list[NodeError] = []
    for node, outcome in outcomes:
        if isinstance(outcome, NodeError):
            errors.append(hinted(outcome))
            samples.append(down_sample(node.name, outcome, config.interval_s))
        else:
            samples.append(outcome)
    return PollResult(samples, errors)
