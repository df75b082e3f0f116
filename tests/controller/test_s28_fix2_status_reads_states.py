"""`controller status` counts the nodes down for a limit of this machine from their states, parsing no sample.

Only the states matter to that count (`_down_for_local_limit`); parsing every node's newest sample cost ~60-110 ms
at 1,000 nodes of 8 GPUs. The test counts the samples the store parses on a real store and checks the answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factoryctl.cli import controller as status_cli
from factoryctl.config import load_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store import rows
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.transport.host_limits import LOCAL

STARVED = "this machine has no file descriptor left for another connection (ulimit -n is 64): not a fault of the node"


def test_nodes_down_for_a_local_limit_are_counted_without_parsing_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = tmp_path / "factory.yaml"
    config_path.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{'n[1-6]': {{transport: local}}}}\n")
    config = load_config(config_path)
    now = time.time()
    store = Store(config.store_path)
    up = ("n1", "n2", "n3", "n4")
    samples = [
        NodeSample(node=name, time=now, gpus=tuple(GpuSample(node=name, index=i, uuid=f"{name}-{i}") for i in range(8)))
        for name in up
    ]
    down = [NodeState(name, "down", now, None, LOCAL, STARVED) for name in ("n5", "n6")]
    store.write(samples, states=[NodeState(name, "up", now, now) for name in up] + down, stored_at=now)
    store.close()
    parsed: list[str] = []
    real = rows.sample_from_json

    def counted(text: str) -> NodeSample:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(rows, "sample_from_json", counted)
    assert status_cli._down_for_local_limit(config) == (2, STARVED)
    assert parsed == []  # was 4: every up node's sample, for a count that reads none of them
