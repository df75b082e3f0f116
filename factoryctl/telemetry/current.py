"""The freshest state of some nodes: from the store when a live controller writes it, else by polling them.

`nodes list` and `gpus` answer in well under a second on a big factory when a controller runs, and still work
with no controller at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from factoryctl.config import FactoryConfig
from factoryctl.model.inventory import NodeSpec
from factoryctl.telemetry.poll import PollResult, poll_nodes


def current_samples(config: FactoryConfig, nodes: Sequence[NodeSpec], timeout: float) -> PollResult:
    """Latest samples of `nodes`, in inventory order, with per-node errors."""
    from factoryctl.telemetry.latest import read_live

    live = read_live(config, nodes)
    return live if live is not None else poll_nodes(config, nodes, timeout)
