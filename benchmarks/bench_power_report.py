"""`power report` benchmark: CPU seconds of `read_report` over 1, 7 and 30 days, a base tree against the working tree.

Usage (from the repository root):

    git archive BASE factoryctl | tar -x -C /tmp/scratch/report/base
    nice -n 19 python benchmarks/bench_power_report.py [--nodes 8,64,256] [--periods 1d,7d,30d] [--dir D] [--base B]

The synthetic store (built once per size in D, kept for the next run): N nodes x 8 GPUs, 31 days of 1-minute
rollups (power only, each minute covered whole, 12 samples) up to the end, and the last 6 hours as raw rows every
5 s with power and the energy counter (the rollups' minutes before them pruned: the seam reads its lead-in), as a
controller with `raw_retention: 6h` leaves it. Prices: 15-minute intervals over the 31 days. Each period is read
by the base tree's factoryctl (`--base`, the package as it was, on PYTHONPATH) and by the working tree's, each in a
fresh process, on the same store opened read-only, as the CLI opens it: CPU seconds of `read_report`, the process's
peak RSS, and how far apart the two reports are (every number, field by field: "same" when equal to the bit).
`--odd-mw` builds and reads another store whose minutes' mean power is not whole watts, as real means are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from factoryctl.model.telemetry import GpuSample, NodeSample
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


def build(path: Path, nodes: int, odd_mw: bool = False) -> None:
    """The synthetic store of `nodes` nodes (see the module's docstring), unless it is there already.

    `odd_mw`: each minute's mean power is not a round number of watts (up to 996 mW more, as a real mean is), so a
    minute's joules have a fraction and their sum's last bits depend on how it is summed.
    """
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
                    for mw in (watts(node, g, m * 60) * 1000 + (odd(node, g, m) if odd_mw else 0),)
                ),
            )
            db.executemany(
                "INSERT INTO sample (node_id, gpu, t_ms, power_mw, energy_mj) VALUES (?, ?, ?, ?, ?)",
                (row for g in range(GPUS) for row in _raw_rows(node_id, node, g, raw_from)),
            )
            db.commit()
    finally:
        db.close()


def odd(node: int, gpu: int, minute: int) -> int:
    """The milliwatts a minute's mean power has over whole watts (`build`'s `odd_mw`), deterministic."""
    return (minute * 7919 + gpu * 104_729 + node * 13) % 997


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


def timed(store_path: Path, nodes: int, seconds: int) -> dict[str, Any]:
    """One `read_report` of the period ending at END, in this process: its CPU seconds, peak RSS, the report."""
    from factoryctl.power.report import read_report

    names = [f"n{node:03d}" for node in range(nodes)]
    store = Store(store_path, readonly=True)
    try:
        started = time.process_time()
        report = read_report(store, names, (float(END - seconds), float(END)), prices())
        cpu = time.process_time() - started
    finally:
        store.close()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cpu_s": cpu, "rss_mib": rss_mib, "report": dataclasses.asdict(report)}


def run_side(tree: Path, store_path: Path, nodes: int, period: str) -> dict[str, Any]:
    """`timed` in a fresh process with `tree`'s factoryctl first on the path."""
    found = subprocess.run(
        [sys.executable, __file__, "--side", str(store_path), str(nodes), period],
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(found.stdout)
    return result


def farthest(old: Any, new: Any) -> float:
    """The largest relative difference between two reports' numbers (0.0: equal to the bit); inf: not comparable."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        return max((farthest(old[key], new[key]) for key in old), default=0.0)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return max((farthest(a, b) for a, b in zip(old, new, strict=True)), default=0.0)
    if isinstance(old, float) and isinstance(new, float) and old != new:
        return abs(new - old) / max(abs(old), abs(new))
    return 0.0 if old == new else math.inf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="8,64")
    parser.add_argument("--periods", default="1d,7d,30d")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/scratch/report"))
    parser.add_argument("--base", type=Path, default=Path("/tmp/scratch/report/base"))
    parser.add_argument("--odd-mw", action="store_true", help="minutes' mean power not whole watts (`build`)")
    parser.add_argument("--side", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        path, nodes, period = args.side
        print(json.dumps(timed(Path(path), int(nodes), PERIODS[period])))
        return 0
    head = Path(__file__).resolve().parent.parent
    print(
        f"{'nodes':>5} {'period':>6} {'base s':>8} {'head s':>8} {'head/base':>9} {'base MiB':>8} {'head MiB':>8}  same"
    )
    for nodes in (int(n) for n in args.nodes.split(",")):
        path = args.dir / f"store-{nodes}{'-odd' if args.odd_mw else ''}.db"
        build(path, nodes, args.odd_mw)
        for period in args.periods.split(","):
            old = run_side(args.base, path, nodes, period)
            new = run_side(head, path, nodes, period)
            apart = farthest(old["report"], new["report"])
            same = "yes" if apart == 0.0 else f"{apart:.1e} relative"
            print(
                f"{nodes:5d} {period:>6} {old['cpu_s']:8.2f} {new['cpu_s']:8.2f} {new['cpu_s'] / old['cpu_s']:9.3f}"
                f" {old['rss_mib']:8.0f} {new['rss_mib']:8.0f}  {same}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
