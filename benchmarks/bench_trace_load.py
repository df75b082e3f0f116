"""Loading a big job trace (`sched simulate --trace`): this checkout against an older one, side by side.

Session 21 made the trace loader stream: `read_trace` parses the lines as they are read (`textfile.text_lines`)
where it held the whole text, a list of every line and the parsed jobs at once. This writes a trace of `--copies`
copies of the Philly slice (1,053 jobs each; every copy a day later, each submit time jittered by up to an hour,
seed 21; 2,375 copies are 2,500,875 rows), and the same trace with one bad row added at its end, then runs per side:

- `load`: `read_trace` of the trace in a fresh `python -P -c`, which prints its own load time, the job count and
  a sha256 of every job's fields (the same on both sides);
- `cli bad last row`: `factoryctl -q sched simulate --trace BAD --nodes 20 -o json`, which reads every row and
  fails (exit 2) at the last one: the loader alone, through the real command;
- `cli stdin`: the same with `--trace -` and the file on stdin.

Wall time, CPU and peak RSS are the child's (`os.wait4`); base and head alternate, `--runs` times each.

    git -C /work/main archive BASE factoryctl | tar -x -C /tmp/scratch/NAME/base
    python benchmarks/bench_trace_load.py --base /tmp/scratch/NAME/base --scratch /tmp/scratch/NAME [--copies N]

`--base` (and `--head`, default this checkout) is a directory holding a `factoryctl` package. Children run with
`python -P` from the scratch directory, bytecode cached under it (`PYTHONPYCACHEPREFIX`), the same for both sides.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "philly_vc_ee9e8c.csv"
LOAD = """
import hashlib, sys, time
from pathlib import Path
from factoryctl.cli.sched import read_trace
began = time.perf_counter()
jobs = read_trace(Path(sys.argv[1]), quiet=True)
took = time.perf_counter() - began
digest = hashlib.sha256()
for job in jobs:
    digest.update(repr((job.job_id, job.submit_s, job.duration_s, job.num_gpus, job.gpus_per_node, job.priority,
                        job.walltime_s)).encode())
print(f"{took:.2f} {len(jobs)} {digest.hexdigest()}")
"""


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    status: int
    said: str  # the load's own time, count and digest; the command's stderr


def write_traces(data: Path, copies: int, scratch: Path) -> tuple[Path, Path]:
    """The big trace and the same with a bad last row, reused while they hold `copies` copies."""
    good, bad = scratch / f"trace-{copies}.csv", scratch / f"trace-{copies}-bad.csv"
    if good.exists() and bad.exists():
        return good, bad
    with data.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    rng = random.Random(21)
    with good.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("job_id", "submit_time_s", "duration_s", "num_gpus", "num_nodes", "gpus_per_node"))
        for copy in range(copies):
            for r in rows:
                submit = round(float(r["submit_time_s"]) + rng.uniform(0, 3600) + copy * 86400)
                writer.writerow(
                    (
                        f"{r['job_id']}-{copy}",
                        submit,
                        r["duration_s"],
                        r["num_gpus"],
                        r["num_nodes"],
                        r["gpus_per_node"],
                    )
                )
    bad.write_bytes(good.read_bytes() + b"zz,0,-1,1,1,1\n")
    return good, bad


def run(package_dir: Path, scratch: Path, argv: list[str], stdin: Path | None) -> Run:
    """One child with `package_dir` first on its path; its stdout and stderr kept in files."""
    env = {**os.environ, "PYTHONPATH": str(package_dir), "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        source = stdin.open("rb") if stdin is not None else subprocess.DEVNULL
        began = time.perf_counter()
        child = subprocess.Popen(argv, stdin=source, stdout=out, stderr=err, env=env, cwd=scratch)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        if stdin is not None and not isinstance(source, int):
            source.close()
        out.seek(0)
        err.seek(0)
        printed = out.read().decode().strip() or err.read().decode().strip()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode, printed)


def main() -> None:
    """Write the traces, run each case on both sides, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="directory holding the older factoryctl package")
    parser.add_argument("--head", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=2375, help="copies of the 1,053-job slice (2375: 2.5M rows)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    good, bad = write_traces(args.data, args.copies, args.scratch)
    command = [sys.executable, "-P", "-m", "factoryctl", "-q", "sched", "simulate", "--nodes", "20", "-o", "json"]
    cases = {
        "load": ([sys.executable, "-P", "-c", LOAD, str(good)], None),
        "cli bad last row": ([*command, "--trace", str(bad)], None),
        "cli stdin": ([*command, "--trace", "-"], bad),
    }
    print(f"{good.name}: {good.stat().st_size:,} bytes; load average {os.getloadavg()[0]:.1f}")
    print(
        "| case | exit base / head | wall base / head (median) | CPU base / head | head / base | peak RSS base / head | head / base |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (argv, stdin) in cases.items():
        runs: dict[str, list[Run]] = {"base": [], "head": []}
        for _ in range(args.runs):
            for side, package in (("base", args.base), ("head", args.head)):
                runs[side].append(run(package, args.scratch, argv, stdin))
        said = {side: {r.said.split(" ", 1)[-1] if name == "load" else r.said for r in rs} for side, rs in runs.items()}
        if said["base"] != said["head"] or len(said["base"]) != 1:
            print(f"  {name}: the sides differ: {said}", file=sys.stderr)
        wall, cpu, rss = (
            {s: statistics.median(getattr(r, f) for r in runs[s]) for s in runs} for f in ("wall_s", "cpu_s", "rss_mb")
        )
        print(
            f"| {name} | {runs['base'][0].status} / {runs['head'][0].status} | {wall['base']:.2f} / {wall['head']:.2f} s"
            f" | {cpu['base']:.2f} / {cpu['head']:.2f} s | {cpu['head'] / cpu['base']:.2f}"
            f" | {rss['base']:.0f} / {rss['head']:.0f} MB | {rss['head'] / rss['base']:.2f} |"
        )
    print(f"the command said: {runs['head'][0].said.splitlines()[0]}")


if __name__ == "__main__":
    main()
