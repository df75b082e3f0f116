"""Refresh cost of the dashboard at 64 and 256 nodes x 8 GPUs: CPU per refresh and frame time.

The real app (make_app) runs headless at a fixed terminal size on a synthetic factory whose values change every
refresh. A refresh is: publish a new snapshot -> header, power graph and node table update -> Textual composes and
writes the frame. We measure, per refresh:

- cpu: this process's CPU time from publishing the snapshot until the app is idle again (frame written);
- wall: includes Pilot's wait for idle (about 45 ms even for an empty factory: see the baseline row);
- table: the node table's data step (NodeTable.show_rows: sort, filter, layout);
- frame: drawing every visible line of the node table afresh (its Line API render_line), i.e. one repaint.

Two scenarios per size: sorted by name (row order stable) and sorted by power (the order changes every refresh). A baseline in the same run: the same refresh with an empty factory, so the
fixed cost of Textual's frame is visible next to ours.

    python benchmarks/bench_dashboard.py --nodes 64,256 --refreshes 30
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from typing import Any

from factoryctl.live.services import FactorySnapshot, NodeHistory
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.tui.app import make_app
from factoryctl.tui.widgets.node_table import NodeTable


def synthetic(nodes: int, gpus: int, tick: int) -> FactorySnapshot:
    """A factory whose values move every tick (deterministic)."""
    samples = []
    for n in range(nodes):
        name = f"gpu{n + 1:04d}"
        gs = []
        for g in range(gpus):
            util = 50 + 50 * math.sin((n * gpus + g) * 0.37 + tick * 0.5)
            power = 70 + 6.3 * util
            gs.append(
                GpuSample(
                    node=name,
                    index=g,
                    uuid=f"GPU-{n:04x}{g:04x}-0000-0000-0000-000000000000",
                    name="NVIDIA H100 80GB HBM3",
                    utilization_pct=round(util, 1),
                    memory_used_mib=800 * util,
                    memory_total_mib=81920,
                    power_w=round(power, 1),
                    power_limit_w=700.0,
                    power_limit_min_w=200.0,
                    power_limit_max_w=700.0,
                    power_limit_default_w=700.0,
                    temperature_c=round(32 + power / 14),
                    temperature_slowdown_c=87.0,
                    sm_clock_mhz=1980.0,
                )
            )
        state = "down" if (n + tick) % 97 == 0 else "up"
        samples.append(NodeSample(node=name, time=1.8e9 + tick, state=state, gpus=tuple(gs) if state == "up" else ()))
    history = tuple(nodes * 3000.0 + 500 * math.sin(i / 20) for i in range(3600))
    return FactorySnapshot(
        factory="bench",
        time=1.8e9 + tick,
        nodes=tuple(samples),
        racks={s.node: f"r{i // 32}" for i, s in enumerate(samples)},
        budget_kw=nodes * 5.0,
        power_history_w=history,
    )


class StillServices:
    """Serves nothing by itself: the benchmark publishes snapshots directly, timing only the UI."""

    factory_name = "bench"
    interval_s = 3600.0

    def __init__(self, first: FactorySnapshot) -> None:
        self.first = first

    def snapshot(self) -> FactorySnapshot:
        return self.first

    def node_history(self, node: str) -> NodeHistory:
        return NodeHistory(node, 1.0)

    def drain(self, node: str, reason: str) -> None:
        raise NotImplementedError

    def resume(self, node: str) -> None:
        raise NotImplementedError

    def set_power_cap(self, node: str, watts: float) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


async def measure(nodes: int, gpus: int, refreshes: int, sort: str, size: tuple[int, int]) -> dict[str, float]:
    snapshots = [synthetic(nodes, gpus, t) for t in range(refreshes + 1)]
    app = make_app(StillServices(snapshots[0]))
    table_times: list[float] = []
    async with app.run_test(size=size) as pilot:
        while app.snapshots_taken < 1:
            await pilot.pause(0.01)
        await pilot.pause()
        table = app.screen.query_one(NodeTable)
        if sort != "node":
            table.sort_by(sort, reverse=True)
            await pilot.pause()
        original = table.show_rows

        def timed(rows: Any, *, refiltered: bool = False) -> None:
            t0 = time.process_time()
            original(rows, refiltered=refiltered)
            table_times.append(time.process_time() - t0)

        table.show_rows = timed  # type: ignore[method-assign]
        cpu: list[float] = []
        wall: list[float] = []
        for snap in snapshots[1:]:
            c0, w0 = time.process_time(), time.perf_counter()
            app.snapshot = snap
            await pilot.pause()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        frames = []
        for _ in range(10):
            f0 = time.process_time()
            for y in range(table.size.height):  # every visible line of the table, drawn afresh
                table.render_line(y)
            frames.append(time.process_time() - f0)
    return {
        "cpu_ms": statistics.median(cpu) * 1000,
        "cpu_p90_ms": sorted(cpu)[int(0.9 * (len(cpu) - 1))] * 1000,
        "wall_ms": statistics.median(wall) * 1000,
        "table_ms": statistics.median(table_times) * 1000 if table_times else 0.0,
        "frame_ms": statistics.median(frames) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="64,256")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument("--size", default="160x50", help="terminal WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"terminal {width}x{height}, {args.refreshes} refreshes each, medians (p90 for CPU)")
    print(f"{'factory':<22}{'sort':<7}{'cpu ms':>8}{'p90':>8}{'wall ms':>9}{'table ms':>10}{'frame ms':>10}")
    baseline = asyncio.run(measure(0, args.gpus, args.refreshes, "node", (width, height)))
    print(
        f"{'empty (baseline)':<22}{'node':<7}{baseline['cpu_ms']:8.1f}{baseline['cpu_p90_ms']:8.1f}"
        f"{baseline['wall_ms']:9.1f}{baseline['table_ms']:10.2f}{baseline['frame_ms']:10.1f}"
    )
    for nodes in (int(n) for n in args.nodes.split(",")):
        for sort in ("node", "power"):
            r = asyncio.run(measure(nodes, args.gpus, args.refreshes, sort, (width, height)))
            print(
                f"{f'{nodes} nodes x {args.gpus} GPUs':<22}{sort:<7}{r['cpu_ms']:8.1f}{r['cpu_p90_ms']:8.1f}"
                f"{r['wall_ms']:9.1f}{r['table_ms']:10.2f}{r['frame_ms']:10.1f}"
            )


if __name__ == "__main__":
    main()
