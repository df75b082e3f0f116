"""A fixed, deterministic factory for the dashboard's tests: frozen samples with every state a screen must show.

`FrozenServices` serves it through the `DashboardServices` port, so Pilot and snapshot tests drive the real app
with pictures that never change between runs. Live-path tests use `PolledServices` on the simulated driver instead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from factoryctl.errors import NodeError
from factoryctl.live.services import DashboardEvent, FactorySnapshot, GpuHistory, JobLine, NodeHistory
from factoryctl.model.telemetry import GpuProcess, GpuSample, NodeSample

T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z
H100 = "NVIDIA H100 80GB HBM3"


def gpu(node_index: int, index: int, **over: Any) -> GpuSample:
    """One simulated H100 with values that vary by node and GPU."""
    phase = (node_index * 8 + index) * 0.7
    util = round(50 + 50 * math.sin(phase)) if (node_index + index) % 5 else 0
    limit = 700.0
    power = 70.0 + (limit - 70.0) * util / 100 * 0.92
    temp = 32.0 + 48.0 * power / limit
    values: dict[str, Any] = {
        "node": f"demo{node_index:02d}",
        "index": index,
        "uuid": f"GPU-{node_index:02x}{index:02x}a1b2-c3d4-5e6f-7081-92a3b4c5d6e7",
        "name": H100,
        "utilization_pct": float(util),
        "memory_used_mib": 81559.0 * util / 100,
        "memory_total_mib": 81559.0,
        "power_w": round(power, 1),
        "power_limit_w": limit,
        "power_limit_min_w": 200.0,
        "power_limit_max_w": 700.0,
        "power_limit_default_w": 700.0,
        "energy_j": 3.6e6 * (10 + node_index + index / 10),
        "temperature_c": round(temp),
        "temperature_slowdown_c": 87.0,
        "sm_clock_mhz": 1980.0 if util else 345.0,
        "throttle_reasons": () if util else ("gpu_idle",),
        "ecc_uncorrected": 0,
        "processes": (GpuProcess(4100 + index, 30000.0, "python"),) if util > 20 else (),
    }
    values.update(over)
    return GpuSample(**values)


def node(node_index: int, gpus: int = 8, **over: Any) -> NodeSample:
    """One up node of the fixed factory."""
    values: dict[str, Any] = {
        "node": f"demo{node_index:02d}",
        "time": T0,
        "state": "up",
        "agent_version": "0.1.0",
        "backend": "sim",
        "gpus": tuple(gpu(node_index, i) for i in range(gpus)),
    }
    values.update(over)
    return NodeSample(**values)


def fixed_nodes(count: int = 8, gpus: int = 8) -> list[NodeSample]:
    """`count` nodes; for the 8-node factory: one capped, one drained, one down, one stale, one unhealthy."""
    nodes = [node(i, gpus) for i in range(1, count + 1)]
    if count < 8:
        return nodes
    capped = tuple(
        dataclasses.replace(
            g, power_limit_w=450.0, power_w=min(g.power_w or 0, 448.0), throttle_reasons=("sw_power_cap",)
        )
        if (g.utilization_pct or 0) > 60
        else dataclasses.replace(g, power_limit_w=450.0)
        for g in nodes[1].gpus
    )
    nodes[1] = dataclasses.replace(nodes[1], gpus=capped)
    nodes[4] = NodeSample(
        node="demo05",
        time=T0 - 12,
        state="down",
        error="timeout",
        message="demo05: the agent did not answer `sample` in 10 s.",
    )
    nodes[5] = dataclasses.replace(nodes[5], state="degraded", error="timeout", message="no sample for 3 s")
    hot = list(nodes[6].gpus)
    hot[2] = dataclasses.replace(hot[2], ecc_uncorrected=2)
    hot[5] = dataclasses.replace(
        hot[5], temperature_c=89.0, power_w=612.0, utilization_pct=97.0, throttle_reasons=("sw_thermal_slowdown",)
    )
    hot[7] = dataclasses.replace(hot[7], power_w=None, null_reasons={"power_w": "not supported"}, energy_j=None)
    nodes[6] = dataclasses.replace(nodes[6], gpus=tuple(hot))
    return nodes


def power_history(points: int = 120, base_w: float = 26000.0) -> tuple[float, ...]:
    """A deterministic hour-like curve of factory power."""
    return tuple(round(base_w + 6000 * math.sin(i / 9) + 2500 * math.sin(i / 2.3), 1) for i in range(points))


def fixed_snapshot(count: int = 8, gpus: int = 8, **over: Any) -> FactorySnapshot:
    """The fixed factory as one snapshot."""
    nodes = fixed_nodes(count, gpus)
    values: dict[str, Any] = {
        "factory": "demo",
        "time": T0,
        "nodes": tuple(nodes),
        "racks": {n.node: ("a" if i < count // 2 else "b") for i, n in enumerate(nodes)},
        "drained": frozenset({"demo03"}) if count >= 8 else frozenset(),
        "budget_kw": 40.0,
        "interval_s": 30.0,
        "power_history_w": power_history(),
        "events": (
            DashboardEvent(T0 - 600, "demo03", "drain", "drained by ops: fan replacement"),
            DashboardEvent(T0 - 300, "demo02", "power_limit", "power cap 450 W"),
            DashboardEvent(T0 - 40, "demo07", "ecc", "GPU 2: 2 uncorrectable ECC errors", "error"),
            DashboardEvent(T0 - 12, "demo05", "node_down", "down: the agent did not answer", "error"),
        ),
        "groups": {"rack-a": ("demo01", "demo02", "demo03", "demo04")},
        "jobs": (
            JobLine(
                "8csw1t2k4q", "llama-ft", "RUNNING", 16, ("demo01", "demo02"), "running on demo[01-02]", "ana", 5025.0
            ),
            JobLine("8csw3m9ab2", "eval-7b", "RUNNING", 4, ("demo04",), "running on demo04", "bo", 312.0),
            JobLine(
                "8csw4x7pz5",
                "sweep-17",
                "PENDING",
                32,
                (),
                "waiting for 4 nodes with 8 free GPUs; reserved start in ~40 min",
                "ana",
                640.0,
            ),
            JobLine(
                "8csw5c2hq9",
                "tokenize",
                "DEFERRED",
                8,
                (),
                "deferred: price 142.10/MWh is above its max 120.00",
                "cy",
                1250.0,
            ),
        ),
        "jobs_running": 2,
        "queue_length": 2,
    }
    values.update(over)
    return FactorySnapshot(**values)


def fixed_history(node_name: str, gpus: int = 8, points: int = 90) -> NodeHistory:
    """Deterministic per-GPU history."""
    series = []
    for g in range(gpus):
        util = tuple(float(round(50 + 50 * math.sin((i + g * 7) / 6))) for i in range(points))
        power = tuple(70 + 6.3 * u for u in util)
        temp = tuple(32 + 0.068 * p for p in power)
        series.append(GpuHistory(g, util, power, temp))
    return NodeHistory(node_name, 30.0, tuple(series))


class FrozenServices:
    """`DashboardServices` serving a fixed snapshot; records actions and reflects them in the next snapshot."""

    def __init__(self, snapshot: FactorySnapshot | None = None, interval_s: float = 30.0) -> None:
        self.current = snapshot or fixed_snapshot()
        self._interval_s = interval_s
        self.calls: list[tuple[Any, ...]] = []
        self.snapshots_served = 0
        self.closed = False

    @property
    def factory_name(self) -> str:
        return self.current.factory

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def snapshot(self) -> FactorySnapshot:
        self.snapshots_served += 1
        return self.current

    def node_history(self, node: str) -> NodeHistory:
        return fixed_history(node)

    def drain(self, node: str, reason: str) -> None:
        self.calls.append(("drain", node, reason))
        self.current = dataclasses.replace(self.current, drained=self.current.drained | {node})

    def resume(self, node: str) -> None:
        self.calls.append(("resume", node))
        self.current = dataclasses.replace(self.current, drained=self.current.drained - {node})

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        self.calls.append(("set_power_cap", node, watts) if gpus is None else ("set_power_cap", node, watts, gpus))
        sample = self.current.node(node)
        if sample is None or sample.state == "down":
            raise NodeError(node, "timeout", f"{node}: not reachable.", None)
        answers = []
        for g in sample.gpus:
            if gpus is not None and g.index not in gpus:
                continue
            enforced = min(max(watts, g.power_limit_min_w or 0), g.power_limit_max_w or watts)
            answers.append(
                {"index": g.index, "before_w": g.power_limit_w, "enforced_w": enforced, "clamped": enforced != watts}
            )
        return answers

    def close(self) -> None:
        self.closed = True
