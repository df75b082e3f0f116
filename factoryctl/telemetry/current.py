"""The freshest state of some nodes: from the store when a live controller writes it, else by polling them.

`nodes list` and `gpus` answer in well under a second on a big factory when a controller runs, and still work
with no controller at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from factoryctl.config import FactoryConfig
from factoryctl.model.inventory import NodeSpec
from factoryctl.telemetry.poll import DEFAULT_FANOUT, PollResult, poll_nodes


def current_samples(
    config: FactoryConfig,
    nodes: Sequence[NodeSpec],
    timeout: float,
    fanout: int = DEFAULT_FANOUT,
    progress: Callable[[int, int], None] | None = None,
) -> PollResult:
    """Latest samples of `nodes`, in inventory order, with per-node errors.

    Nodes a live controller has no record of (added to factory.yaml since it started) are polled here: reading
    them from its store said "not reached yet" with an agent hint, and hid a real error such as a bad
    `~/.ssh/config` entry (exit 3).
    """
    from factoryctl.telemetry.latest import read_live

    unknown: list[NodeSpec] = []
    live = read_live(config, nodes, unknown=unknown)
    if live is None:
        return poll_nodes(config, nodes, timeout, fanout, progress)
    if not unknown:
        return live
    polled = poll_nodes(config, unknown, timeout, fanout, progress)
    order = {spec.name: place for place, spec in enumerate(nodes)}
    samples = sorted([*live.samples, *polled.samples], key=lambda s: order[s.node])
    errors = sorted([*live.errors, *polled.errors], key=lambda e: order[e.node])
    return PollResult(samples, errors, live.last_seen)
