"""The controller's power loop (one `PowerLoop.run_once()` on held sessions) vs cron's `factoryctl -q power apply all`.

    nice -n 19 python benchmarks/bench_power_loop.py --nodes 16,48 --rounds 5 --dir /tmp/scratch/benchloop

For each fleet size N: two local simulated fleets, n[01-N] x 8 h100-sxm GPUs, each with its own state_dir (the
simulated GPUs live there): one for cron's command, one for the loop. Both use the same `tiers` policy (cap 80 % at
or above 120/MWh) and a price file of 150/MWh for the hours around now, so the plan is 560 W on every GPU and does
not change while the script runs. A warm-up run of each side puts every GPU at plan (and builds the agent zipapp).

Cases, side by side in each round (the order of the two sides swapped every round):

- at plan (the cron case between price steps): nothing to change;
- off plan (a price step): every GPU set to 700 W first (`power set all --watts 700`, not timed), then the run.

cron: `python -m factoryctl -q power apply all -o json` as a child process; CPU = the child's user+sys with its
reaped local agents (getrusage of children), wall = the process's. loop: `PowerLoop.run_once()` in this process,
every node's agent session opened beforehand as the controller's collector holds them (`agent_session`), given as
the loop's `sessions`; CPU = this process and every live descendant (the held agents answering, from
/proc/<pid>/stat) plus reaped ones, minus the held fleet's idle CPU over the same wall time (measured once, 3 s).
Reported: best (min) and median of the rounds, and ratios loop / cron. Load average printed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from factoryctl.config import load_config
from factoryctl.power.policy_loop import PowerLoop
from factoryctl.telemetry.poll import agent_session

TICK = os.sysconf("SC_CLK_TCK")
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def tree_cpu() -> float:
    """CPU seconds of this process, its reaped children, and every live descendant (with their reaped ones).

    This process's own by getrusage (microseconds); the live descendants' from /proc (clock ticks, 10 ms).
    """
    me = os.getpid()
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(value) for value in fields[11:15]) / TICK  # utime stime cutime cstime
    own = resource.getrusage(resource.RUSAGE_SELF)
    total, frontier = own.ru_utime + own.ru_stime + children_cpu(), [me]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0) if pid != me else 0.0
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_fleet(root: Path, count: int) -> Path:
    """factory.yaml, policy.yaml and prices.csv of one side; the state_dir emptied."""
    root.mkdir(parents=True, exist_ok=True)
    state = root / "state"
    if state.exists():
        subprocess.run(["rm", "-rf", str(state)], check=True)
    now = int(time.time()) // 3600 * 3600
    rows = [f"{datetime.fromtimestamp(now + h * 3600, timezone.utc):%Y-%m-%dT%H:%M:%SZ},150" for h in range(-3, 12)]
    (root / "prices.csv").write_text("timestamp_utc,price_per_mwh\n" + "\n".join(rows) + "\n")
    (root / "policy.yaml").write_text("policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n")
    path = root / "factory.yaml"
    path.write_text(
        f"name: benchloop-{root.name}\nstate_dir: {state}\nnodes:\n"
        f"  n[01-{count:02d}]: {{transport: local, sim: {{profile: h100-sxm, gpus: 8}}}}\n"
        "power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n  interval: 0s\n"
    )
    return path


def cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "factoryctl", "--config", str(path), *args]
    return subprocess.run(argv, cwd="/tmp", env=ENV, capture_output=True, text=True, check=False)


def off_plan(path: Path) -> None:
    """Every GPU of the fleet at 700 W (a price step away from the 560 W plan)."""
    done = cli(path, "-q", "power", "set", "all", "--watts", "700", "-o", "json")
    if done.returncode != 0:
        raise SystemExit(f"power set failed: {done.stderr}")


def cron_run(path: Path) -> tuple[float, float, int]:
    """(wall, CPU of the command's process tree, GPUs it changed) of one `power apply all`."""
    before, wall = children_cpu(), time.monotonic()
    done = cli(path, "-q", "power", "apply", "all", "-o", "json")
    wall, cpu = time.monotonic() - wall, children_cpu() - before
    if done.returncode != 0:
        raise SystemExit(f"power apply failed ({done.returncode}): {done.stderr}")
    items = json.loads(done.stdout).get("items", [])
    moved = sum(1 for item in items if item.get("before_w") != item.get("enforced_w"))
    return wall, cpu, moved


def loop_run(loop: PowerLoop, idle_rate: float) -> tuple[float, float, int]:
    """(wall, CPU of this process tree less the held fleet's idle CPU, GPUs changed) of one `run_once`."""
    before, wall = tree_cpu(), time.monotonic()
    run = loop.run_once()
    wall, cpu = time.monotonic() - wall, tree_cpu() - before
    if run.failure or run.errors:
        raise SystemExit(f"loop run failed: {run.failure} {[e.message for e in run.errors]}")
    return wall, cpu - idle_rate * wall, len(run.changes)


def summary(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="16,48")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/scratch/benchloop"))
    parser.add_argument("--no-off-plan", action="store_true", help="only the at-plan case")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, dict[str, list[tuple[float, float, int]]]] = {}
    for count in (int(n) for n in args.nodes.split(",")):
        cron_path = write_fleet(args.dir / f"cron-{count}", count)
        loop_path = write_fleet(args.dir / f"loop-{count}", count)
        config = load_config(loop_path)
        with contextlib.ExitStack() as stack:
            cron_run(cron_path)  # warm-up: every GPU at plan, the zipapp built
            held = {name: stack.enter_context(agent_session(node, config, 15)) for name, node in config.nodes.items()}
            loop = PowerLoop(config, 300.0, sessions=held.get)
            loop_run(loop, 0.0)  # warm-up: imports, every GPU at plan
            idle, wall = tree_cpu(), time.monotonic()
            time.sleep(3.0)
            idle_rate = (tree_cpu() - idle) / (time.monotonic() - wall)
            print(f"{count} nodes: held fleet idle {idle_rate * 1000:.1f} ms CPU/s", flush=True)
            cases = ["at plan"] + ([] if args.no_off_plan else ["off plan"])
            for case in cases:
                got = results.setdefault(f"{count} {case}", {"cron": [], "loop": []})
                for round_ in range(args.rounds):
                    sides = ["cron", "loop"] if round_ % 2 == 0 else ["loop", "cron"]
                    for side in sides:
                        if case == "off plan":
                            off_plan(cron_path if side == "cron" else loop_path)
                        one = cron_run(cron_path) if side == "cron" else loop_run(loop, idle_rate)
                        got[side].append(one)
                        print(
                            f"{count} {case} {side}: wall {one[0]:.3f} s cpu {one[1]:.3f} s changed {one[2]}",
                            flush=True,
                        )
    print(f"load average after: {os.getloadavg()}")
    print(
        "\n| nodes, case | cron wall best / median | cron CPU best / median | loop wall best / median |"
        " loop CPU best / median | loop / cron CPU (best) | loop / cron wall (best) | GPUs changed cron, loop |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, got in results.items():
        cron, loop_ = got["cron"], got["loop"]
        cw, cc = [r[0] for r in cron], [r[1] for r in cron]
        lw, lc = [r[0] for r in loop_], [r[1] for r in loop_]
        print(
            f"| {key} | {summary(cw)} s | {summary(cc)} s | {summary(lw)} s | {summary(lc)} s | "
            f"{min(lc) / min(cc):.3f} | {min(lw) / min(cw):.3f} | {cron[-1][2]}, {loop_[-1][2]} |"
        )


if __name__ == "__main__":
    main()
