"""What finding a rank's processes costs the agent: one /proc pass reading marked environments vs the group check.

Since session 28 the agent finds a rank's processes wherever their process group went (a worker that called
`setsid`) by the rank's FACTORYCTL_RANK_MARK in /proc/PID/environ (factoryctl/agent/rank_procs.py). Before, it only
asked whether the rank's process group had a member (`group_lives`: stat of every process). This starts N idle
processes with a 2 kB environment each, then times, median of 15:

- `group_lives` (the old check, the baseline);
- `rank_processes` for one rank and for 8 ranks, reading every process's environment (a rank older than them all);
- `rank_processes` for a rank started after every process, whose environments are skipped (the usual case: only
  processes younger than the rank can carry its mark).

    python benchmarks/bench_rank_procs.py --processes 100 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factoryctl.agent.rank_procs import Wanted, group_lives, new_mark, rank_processes


def median_ms(work: Callable[[], object], repeats: int = 15) -> float:
    """The median wall time of `work` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def now_ticks() -> int:
    """The boot clock in clock ticks, as /proc/PID/stat's start times are."""
    with open("/proc/uptime", encoding="ascii") as uptime:
        return int(float(uptime.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def measure(count: int) -> None:
    """Start `count` idle processes and print the three scans' times against the old check's."""
    environment = {**os.environ, "PAD": "x" * 2000}
    processes = [subprocess.Popen(["sleep", "600"], env=environment) for _ in range(count)]
    try:
        total = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
        mark = new_mark()
        old = median_ms(lambda: group_lives(999999))
        one = median_ms(lambda: rank_processes({("j", 0): Wanted(999999, mark)}))
        eight = median_ms(lambda: rank_processes({("j", r): Wanted(999990 + r, new_mark()) for r in range(8)}))
        young = median_ms(lambda: rank_processes({("j", 0): Wanted(999999, mark, now_ticks())}))
        print(
            f"processes={total}: group_lives {old:.1f} ms; every environment read: 1 rank {one:.1f} ms"
            f" ({one / old:.2f}x), 8 ranks {eight:.1f} ms ({eight / old:.2f}x); a rank younger than them all"
            f" {young:.1f} ms ({young / old:.2f}x)"
        )
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def main() -> None:
    """Measure at each `--processes` count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[100, 1000])
    for count in parser.parse_args().processes:
        measure(count)


if __name__ == "__main__":
    main()
