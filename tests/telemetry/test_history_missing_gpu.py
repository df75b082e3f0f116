"""`telemetry history NODE/GPU` refuses a GPU the node does not have (exit 2), as `gpus`, `power set` and `sim inject`.

`history s3/5` of a 2-GPU node printed an empty table and exited 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store


def stored(tmp_path: Path) -> Path:
    """factory.yaml of s3 (2 GPUs stored), s4 (never stored) and g[1-3] (8 GPUs each), and its store."""
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {state}\nnodes:\n  s3: {{transport: local}}\n  s4: {{transport: local}}\n"
        "  g[1-3]: {transport: local}\n"
    )
    store = Store(state / "factory.db")
    now = time.time()
    samples = [NodeSample("s3", now - 10, gpus=tuple(GpuSample("s3", i, power_w=100.0) for i in range(2)))]
    samples += [
        NodeSample(f"g{n}", now - 10, gpus=tuple(GpuSample(f"g{n}", i, power_w=100.0) for i in range(8)))
        for n in range(1, 4)
    ]
    store.write(samples)
    store.close()
    return config


def test_a_gpu_the_node_lacks_is_refused(tmp_path: Path, cli: Callable[..., Any]) -> None:
    config = stored(tmp_path)
    result = cli("--config", str(config), "telemetry", "history", "s3/5", "--since", "5m")
    assert result.exit_code == 2, result.stdout
    assert result.stdout == ""
    assert "factoryctl: no node of `s3` has GPU 5 in the store (s3 has GPUs 0-1)." in result.stderr
    assert "hint: run `factoryctl gpus s3` to see their GPUs." in result.stderr
    result = cli("--config", str(config), "telemetry", "history", "g[1-3]/9", "--since", "5m")
    assert result.exit_code == 2
    assert "(g[1-3] have GPUs 0-7)" in result.stderr


def test_a_gpu_it_has_and_a_node_never_stored_are_not_refused(tmp_path: Path, cli: Callable[..., Any]) -> None:
    config = stored(tmp_path)
    result = cli("--config", str(config), "telemetry", "history", "s3/1", "--since", "5m")
    assert result.exit_code == 0
    assert "power_w" in result.stdout
    result = cli("--config", str(config), "telemetry", "history", "s3/1", "--since", "5m", "--until", "4m")
    assert result.exit_code == 0  # it has GPU 1, with nothing stored in that window
    assert "no stored power_w" in result.stderr
    result = cli("--config", str(config), "telemetry", "history", "s4/5", "--since", "5m")
    assert result.exit_code == 0  # nothing stored of s4: nothing to tell about its GPUs
