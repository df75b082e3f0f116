"""Fixtures for the simulated driver: a controllable clock and fresh nodes in a temporary state dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.sim import nvml
from factoryctl.sim.state import SimNode


class FakeClock:
    """Unix time that only moves when a test says so."""

    def __init__(self, start: float = 1_800_000_000.25) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_node(tmp_path: Path, clock: FakeClock) -> Callable[..., SimNode]:
    def make(node: str = "n1", **kwargs: Any) -> SimNode:
        kwargs.setdefault("profile", "h100-sxm")
        kwargs.setdefault("gpus", 8)
        kwargs.setdefault("clock", clock)
        return SimNode(tmp_path / "state", node, **kwargs)

    return make


@pytest.fixture
def driver(tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    """The pynvml-shaped module, configured for an idle 4-GPU H100 node and initialised."""

    def setup(**kwargs: Any) -> Any:
        kwargs.setdefault("profile", "h100-sxm")
        kwargs.setdefault("gpus", 4)
        kwargs.setdefault("workload", "idle")
        kwargs.setdefault("clock", clock)
        nvml.configure(node="n1", state_dir=str(tmp_path / "state"), **kwargs)
        nvml.nvmlInit()
        return nvml

    yield setup
    nvml.configure(node="unused")
