"""Memory of a big trace replay (`sched simulate --trace`): this checkout against an older one, side by side.

Session 28 keeps the parsed trace (`TraceJobs`) and each policy's schedule (`ScheduleRecords`) in columns, lets
go of a job once it starts, and checks and summarises the schedule from the columns. Per side, each in a fresh
process (peak RSS and CPU from `os.wait4`):

- `load`: the trace parsed (`load_trace`, or `read_trace` where the checkout has no `load_trace`), with a sha256
  of every job's fields, which must be the same on both sides;
- `replay`: `factoryctl -q sched simulate --trace T --nodes N --policy P -o json --schedule-out S`; the sha256 of
  S and of the JSON without the pass CPU-time fields must be the same on both sides.

The trace is `bench_trace_load.py`'s: `--copies` copies of the Philly slice a day apart, submits jittered (2,375
copies: 2.5 M rows, 98 MB; 24,000: 25 M rows, 1 GB), written under `--scratch` with that script's copy ending
in a bad row (twice the trace's size on disk), and the schedules beside them.

    git worktree add /tmp/scratch/NAME/base BASE
    python benchmarks/bench_trace_memory.py --base /tmp/scratch/NAME/base --scratch /tmp/scratch/NAME --copies 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from bench_trace_load import DATA, Run, run, write_traces

HEAD = Path(__file__).resolve().parents[1]  # this checkout
LOAD = """
import hashlib, sys
from pathlib import Path
import factoryctl.cli.sched as sched
load = getattr(sched, "load_trace", sched.read_trace)
jobs = load(Path(sys.argv[1]), quiet=True)
digest = hashlib.sha256()
for job in jobs:
    digest.update(repr((job.job_id, job.submit_s, job.duration_s, job.num_gpus, job.gpus_per_node, job.priority,
                        job.walltime_s)).encode())
print(f"0 {len(jobs)} {digest.hexdigest()}")
"""


def replay(package: Path, scratch: Path, trace: Path, options: list[str]) -> tuple[Run, str]:
    """The CLI replay with `package` first on the path, and the digest of what it wrote (schedule, JSON)."""
    schedule = scratch / "schedule.csv"
    argv = [sys.executable, "-P", "-m", "factoryctl", "-q", "sched", "simulate", "--trace", str(trace), *options]
    done = run(package, scratch, [*argv, "-o", "json", "--schedule-out", str(schedule)], None)
    items = json.loads(done.said)["items"] if done.status == 0 else []
    for item in items:
        for key in [key for key in item if key.startswith("pass_time")]:
            del item[key]
    digest = hashlib.sha256(schedule.read_bytes() if schedule.exists() else b"")
    digest.update(json.dumps(items, sort_keys=True).encode())
    schedule.unlink(missing_ok=True)
    return done, digest.hexdigest()[:16]


def row(case: str, base: Run, head: Run, same: bool) -> str:
    """One Markdown table row: exits, CPU and peak RSS base / head with their ratios."""
    return (
        f"| {case} | {base.status} / {head.status} | {base.cpu_s:.1f} / {head.cpu_s:.1f} s | {head.cpu_s / base.cpu_s:.2f}"
        f" | {base.rss_mb:,.0f} / {head.rss_mb:,.0f} MB | **{head.rss_mb / base.rss_mb:.2f}** | {'yes' if same else 'NO'} |"
    )


def main() -> None:
    """Write the trace, run each case on both sides, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="directory holding the older factoryctl package")
    parser.add_argument("--scratch", type=Path, required=True, help="where the trace and the schedules are written")
    parser.add_argument("--copies", type=int, default=2375, help="copies of the 1,053-job slice (24000: 1 GB)")
    parser.add_argument("--nodes", default="20")
    parser.add_argument("--policies", default="fifo,sjf,easy,default")
    parser.add_argument("--cases", default="load,replay")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    trace, _ = write_traces(args.data, args.copies, args.scratch)
    print(f"{trace.name}: {trace.stat().st_size:,} bytes; load average {os.getloadavg()[0]:.1f}")
    print(
        "| case | exit base / head | CPU base / head | head / base | peak RSS base / head | head / base | same output |"
    )
    print("|---|---|---|---|---|---|---|")
    cases = args.cases.split(",")
    if "load" in cases:
        base, head = (
            run(side, args.scratch, [sys.executable, "-P", "-c", LOAD, str(trace)], None) for side in (args.base, HEAD)
        )
        print(row("load", base, head, base.said.split()[1:] == head.said.split()[1:]), flush=True)
    if "replay" in cases:
        options = ["--nodes", args.nodes, "--policy", args.policies]
        (base, said), (head, heard) = (replay(side, args.scratch, trace, options) for side in (args.base, HEAD))
        print(row(f"replay {args.policies} on {args.nodes} nodes", base, head, said == heard), flush=True)


if __name__ == "__main__":
    main()
