"""`controller.slow_interval_s` reaches the real agent through the controller's link (local simulated node).

The stream's interval is 0.5 s: the simulated driver, as NVML's sample cache, serves one reading for 50 ms
(`READING_TTL_S`), and at 0.1 s a sample a loaded machine read 56 ms late and the next one, read on time, were 49 ms
apart: they shared a reading and showed one energy. At 0.5 s a sample would have to be read 0.45 s late.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from factoryctl.config import parse_config
from factoryctl.errors import NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.links import Backoff, NodeLink, transport_connector

#: Ten times the driver's reading cache: no two samples' reads fall within one cached reading on a loaded machine.
INTERVAL_S = 0.5


class Samples:
    """A sink that keeps what the link delivers."""

    def __init__(self) -> None:
        self.samples: list[NodeSample] = []
        self.errors: list[NodeError] = []
        self.lock = threading.Lock()

    def offer(self, sample: NodeSample) -> None:
        with self.lock:
            self.samples.append(sample)

    def link_failed(self, node: str, error: NodeError) -> None:
        with self.lock:
            self.errors.append(error)

    def link_connected(self, node: str) -> None:
        pass

    def samples_missed(self, node: str, count: int) -> None:
        pass

    def sample_failed(self, node: str, error: NodeError) -> None:
        self.link_failed(node, error)


def energies(tmp_path: Path, slow_interval_s: float, count: int = 4) -> list[int | None]:
    """GPU 0's energy counter over `count` samples streamed at INTERVAL_S with the given slow tier."""
    text = f"name: t\nnodes:\n  s1: {{transport: local, sim: h100-sxm}}\ncontroller: {{interval_s: {INTERVAL_S}, slow_interval_s: {slow_interval_s}}}\n"
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    config = parse_config(text, path, state_dir=tmp_path / f"state-{slow_interval_s}")
    sink = Samples()
    node = config.nodes["s1"]
    link = NodeLink(
        node, INTERVAL_S, transport_connector(config, 20.0), sink, Backoff(), slow_interval_s=slow_interval_s
    )
    link.start()
    try:
        deadline = time.monotonic() + 20
        while len(sink.samples) < count and time.monotonic() < deadline and not sink.errors:
            time.sleep(0.05)
    finally:
        link.stop()
        link.join(10)
    assert not sink.errors, sink.errors
    assert len(sink.samples) >= count
    return [sample.gpus[0].energy_j for sample in sink.samples[:count]]


def test_the_agent_reads_the_slow_tier_at_the_configured_rate(tmp_path: Path) -> None:
    every_sample = energies(tmp_path, slow_interval_s=0.05)
    assert all(b is not None and a is not None and b > a for a, b in itertools.pairwise(every_sample))
    hourly = energies(tmp_path, slow_interval_s=3600)
    assert len(set(hourly)) == 1  # read once, reused: the agent got the setting
