"""`power report` benchmark: CPU seconds of `read_report` over 1, 7 and 30 days, old code against the working tree.

Usage (from the repository root):

    git show BASE:factoryctl/power/report.py > /tmp/scratch/reportperf/report_old.py
    nice -n 19 python benchmarks/bench_power_report.py [--nodes 8,64] [--periods 1d,7d,30d] [--dir D] [--old P]

The synthetic store (built once per size in D, kept for the next run): N nodes x 8 GPUs, 31 days of 1-minute
rollups (power only, each minute covered whole, 12 samples) up to the end, and the last 6 hours as raw rows every
5 s with power and the energy counter (the rollups' minutes before them pruned: the seam reads its lead-in), as a
controller with `raw_retention: 6h` leaves it. Prices: 15-minute intervals over the 31 days. Each period is read by
the old module (`--old`, a copy of power/report.py imported as it was) and by the working tree's, on the same store
opened read-only, as the CLI opens it; the two reports must be equal, field by field and to the bit.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sqlite3
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.power import report as new_report
from factoryctl.store.samples import PRUNED_BELOW
from factoryctl.store.sqlite import Store

DAY = 86_400
END = 1_764_547_200  # 2025-12-01T00:00:00Z
ROLLUP_DAYS = 31
RAW_S = 6 * 3600
RAW_STEP_S = 5
GPUS = 8
PERIODS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


def watts(node: int, gpu: int, t: int) -> int:
    """A GPU's draw at second `t`: 300-500 W, moving with the minute, deterministic."""
    return 300 + (t // 60 * 7 + gpu * 13 + node * 31) % 201


def build(path: Path, nodes: int) -> None:
    """The synthetic store of `nodes` nodes (see the module's docstring), unless it is there already."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    raw_from = END - RAW_S
    store = Store(path)
    try:  # the node and GPU rows, and each node's newest sample, as the writer makes them
        for node in range(nodes):
            gpus = tuple(
                GpuSample(f"n{node:03d}", g, power_w=400.0, power_limit_w=700.0, power_limit_default_w=700.0)
                for g in range(GPUS)
            )
            store.write([NodeSample(f"n{node:03d}", float(END - 1), gpus=gpus)])
        store.set_meta(PRUNED_BELOW, str(raw_from * 1000))
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        db.execute("DELETE FROM sample")
        ids = dict(db.execute("SELECT name, id FROM node"))
        for node in range(nodes):
            node_id = ids[f"n{node:03d}"]
            db.executemany(
                "INSERT INTO rollup (node_id, gpu, t_min, n, power_mw_min, power_mw_mean, power_mw_max, power_mw_n,"
                " power_covered_ms) VALUES (?, ?, ?, 12, ?, ?, ?, 12, 60000)",
                (
                    (node_id, g, m, mw - 5000, mw, mw + 5000)
                    for g in range(GPUS)
                    for m in range((END - ROLLUP_DAYS * DAY) // 60, raw_from // 60)
                    for mw in (watts(node, g, m * 60) * 1000,)
                ),
            )
            db.executemany(
                "INSERT INTO sample (node_id, gpu, t_ms, power_mw, energy_mj) VALUES (?, ?, ?, ?, ?)",
                (row for g in range(GPUS) for row in _raw_rows(node_id, node, g, raw_from)),
            )
            db.commit()
    finally:
        db.close()


def _raw_rows(node_id: int, node: int, gpu: int, raw_from: int) -> list[tuple[int, int, int, int, int]]:
    """One GPU's raw rows every `RAW_STEP_S` over the raw window: power and the counter summing it."""
    rows, energy_mj = [], 10**9 * (gpu + 1)
    for t in range(raw_from, END, RAW_STEP_S):
        mw = watts(node, gpu, t) * 1000
        rows.append((node_id, gpu, t * 1000, mw, energy_mj))
        energy_mj += mw * RAW_STEP_S
    return rows


def prices() -> list[tuple[float, float, float | None]]:
    """15-minute prices over the rollups' days: 40-135 per MWh, a daily shape."""
    start = END - ROLLUP_DAYS * DAY
    return [(float(t), float(t + 900), float(40 + (t // 900) % 96)) for t in range(start, END, 900)]


def load_old(path: Path) -> ModuleType:
    """The old power/report.py, imported from its copy as module `report_old`."""
    spec = importlib.util.spec_from_file_location("report_old", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["report_old"] = module
    spec.loader.exec_module(module)
    return module


def timed(module: ModuleType, store: Store, names: list[str], seconds: int) -> tuple[float, Any]:
    """CPU seconds of one `read_report` of the period ending at END, and the report as a dict."""
    started = time.process_time()
    report = module.read_report(store, names, (float(END - seconds), float(END)), prices())
    return time.process_time() - started, dataclasses.asdict(report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="8,64")
    parser.add_argument("--periods", default="1d,7d,30d")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/scratch/reportperf"))
    parser.add_argument("--old", type=Path, default=Path("/tmp/scratch/reportperf/report_old.py"))
    args = parser.parse_args()
    old = load_old(args.old)
    print(f"{'nodes':>5} {'period':>6} {'old s':>8} {'new s':>8} {'old/new':>8}  same")
    for nodes in (int(n) for n in args.nodes.split(",")):
        path = args.dir / f"store-{nodes}.db"
        build(path, nodes)
        names = [f"n{node:03d}" for node in range(nodes)]
        for period in args.periods.split(","):
            store = Store(path, readonly=True)
            try:
                old_s, old_report = timed(old, store, names, PERIODS[period])
                new_s, new_report_ = timed(new_report, store, names, PERIODS[period])
            finally:
                store.close()
            same = "yes" if old_report == new_report_ else "NO"
            print(f"{nodes:5d} {period:>6} {old_s:8.2f} {new_s:8.2f} {old_s / new_s:8.1f}  {same}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
