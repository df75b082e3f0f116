"""`telemetry history` over a big store: this checkout against an older one, side by side (wall time, peak RSS).

Session 19 moved `--step` buckets into SQL (GROUP BY), bounded bucketed output by the point limit and made the
table's summary count the stored points. Each case runs as a fresh `python -m factoryctl` per side, alternating
base and head, after one warm-up each (the page cache warm for both), on the same store and factory.yaml:

    python benchmarks/bench_history.py --store S/factory.db --config F.yaml --base /tmp/base [--runs 3] [--heavy]

`--base` is a directory holding the older `factoryctl` package (`git archive BASE factoryctl | tar -x -C DIR`).
The window ends at the store's newest raw row, so reruns read the same rows. `--heavy` adds `--step 1m -o json`
over 7 days, which base serves (minutes, gigabytes) and head refuses.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cases(end: float, heavy: bool) -> list[tuple[str, list[str]]]:
    """(label, history arguments): windows end at `end` (the store's newest row, plus a second)."""
    until = ["--until", iso(end + 1)]
    week = ["--since", iso(end - 7 * 86400), *until]
    found = [
        ("all 7d table (summarised)", ["all", *week]),
        ("all 7d --step 1h json", ["all", *week, "--step", "1h", "-o", "json"]),
        ("all 7d --step 5m csv", ["all", *week, "--step", "5m", "-o", "csv"]),
        ("all 7d json (refused)", ["all", *week, "-o", "json"]),
        ("f01 2h json (raw, no step)", ["f01", "--since", iso(end - 7200), *until, "-o", "json"]),
        ("all 30m table (raw, no step)", ["all", "--since", iso(end - 1800), *until]),
    ]
    if heavy:
        found.append(("all 7d --step 1m json", ["all", *week, "--step", "1m", "-o", "json"]))
    return found


def run(package_dir: str, config: str, args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit status) of one `factoryctl telemetry history ARGS` with `package_dir` first."""
    env = {**os.environ, "PYTHONPATH": package_dir}
    # -P: `-m` would put the current directory (the repository root) before PYTHONPATH, and "base" would be HEAD
    argv = [sys.executable, "-P", "-m", "factoryctl", "--config", config, "telemetry", "history", *args]
    began = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - began, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True, help="the store the config's state_dir holds (for its newest row)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--base", required=True, help="directory holding the base checkout's factoryctl package")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heavy", action="store_true")
    args = parser.parse_args()
    newest = sqlite3.connect(f"file:{args.store}?mode=ro", uri=True).execute("SELECT MAX(t_ms) FROM sample")
    end = newest.fetchone()[0] / 1000
    head = str(Path(__file__).resolve().parent.parent)
    print("| case | exit base / head | wall base / head (median) | head / base | peak RSS base / head |")
    print("|---|---|---|---|---|")
    for label, history in cases(end, args.heavy):
        sides: dict[str, list[tuple[float, float, int]]] = {"base": [], "head": []}
        for where in (args.base, head):
            run(where, args.config, history)  # warm-up
        for _ in range(args.runs):
            for side, where in (("base", args.base), ("head", head)):
                sides[side].append(run(where, args.config, history))
        wall = {side: statistics.median(r[0] for r in found) for side, found in sides.items()}
        rss = {side: max(r[1] for r in found) for side, found in sides.items()}
        codes = {side: found[0][2] for side, found in sides.items()}
        print(
            f"| {label} | {codes['base']} / {codes['head']} | {wall['base']:.2f} / {wall['head']:.2f} s"
            f" | {wall['head'] / wall['base']:.2f} | {rss['base']:.0f} / {rss['head']:.0f} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
