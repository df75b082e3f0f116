"""In-memory recent history for a dashboard with no store to read it from: factory power and per-GPU series.

Compact on purpose (one float32 array per node sample), so 256 nodes x 8 GPUs x 10 minutes stays near 25 MiB.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque

from factoryctl.live.services import GpuHistory, NodeHistory
from factoryctl.model.telemetry import NodeSample

NAN = float("nan")


def _pack(value: float | None) -> float:
    return NAN if value is None else float(value)


def _unpack(value: float) -> float | None:
    return None if math.isnan(value) else value


class RecentHistory:
    """Factory power (one point per `record_factory` call) and each node's last `per_node` samples per GPU."""

    def __init__(self, interval_s: float, factory_points: int = 3600, per_node: int = 600) -> None:
        self.interval_s = interval_s
        self.factory_power_w: deque[float] = deque(maxlen=factory_points)
        self._per_node = per_node
        self._nodes: dict[str, deque[tuple[tuple[int, ...], array[float]]]] = {}
        self._lock = threading.Lock()
        self._last_factory_record = 0.0

    def record_factory(self, power_w: float) -> None:
        """Append one point of factory power."""
        with self._lock:
            self.factory_power_w.append(power_w)

    def record_factory_at(self, now: float, power_w: float) -> None:
        """Append one point of factory power unless `record_factory_at` appended one within this interval."""
        if now - self._last_factory_record >= self.interval_s * 0.9:
            self._last_factory_record = now
            self.record_factory(power_w)

    def seed_factory(self, points: tuple[float, ...]) -> None:
        """Start from another source's factory power (a controller handing back): the hour's graph and energy go on."""
        with self._lock:
            self.factory_power_w.extend(points)

    def factory_series(self) -> tuple[float, ...]:
        """Factory power, oldest first."""
        with self._lock:
            return tuple(self.factory_power_w)

    def record_node(self, sample: NodeSample) -> None:
        """Append one sample of a node's GPUs (utilization, power, temperature)."""
        if not sample.gpus:
            return
        indexes = tuple(g.index for g in sample.gpus)
        values = array(
            "f",
            [_pack(g.utilization_pct) for g in sample.gpus]
            + [_pack(g.power_w) for g in sample.gpus]
            + [_pack(g.temperature_c) for g in sample.gpus],
        )
        with self._lock:
            ring = self._nodes.get(sample.node)
            if ring is None:
                ring = self._nodes[sample.node] = deque(maxlen=self._per_node)
            ring.append((indexes, values))

    def node(self, node: str) -> NodeHistory:
        """Per-GPU series of one node (GPUs as of the newest sample)."""
        with self._lock:
            points = list(self._nodes.get(node, ()))
        if not points:
            return NodeHistory(node, self.interval_s)
        newest = points[-1][0]
        gpus = []
        for position, index in enumerate(newest):
            util: list[float | None] = []
            power: list[float | None] = []
            temp: list[float | None] = []
            for indexes, values in points:
                n = len(indexes)
                if position < n and indexes[position] == index:
                    at = position
                elif index in indexes:
                    at = indexes.index(index)
                else:
                    util.append(None)
                    power.append(None)
                    temp.append(None)
                    continue
                util.append(_unpack(values[at]))
                power.append(_unpack(values[n + at]))
                temp.append(_unpack(values[2 * n + at]))
            gpus.append(GpuHistory(index, tuple(util), tuple(power), tuple(temp)))
        return NodeHistory(node, self.interval_s, tuple(gpus))
