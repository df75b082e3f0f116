"""The controller's power loop (one `PowerLoop.run_once()` on held sessions) vs cron's `factoryctl -q power apply all`.

    nice -n 19 python benchmarks/bench_power_loop.py --nodes 16,48 --rounds 5 --dir /tmp/scratch/benchloop
    git archive HEAD | tar -x -C /tmp/base    # the code before a change, run beside this tree's cron side:
    nice -n 19 python benchmarks/bench_power_loop.py --base /tmp/base --nodes 16,48 --rounds 5

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

`--base DIR` (a source tree, e.g. `git archive` of an older commit): a third side, `base`, cron's command run from
DIR (PYTHONPATH) on its own fleet, in the same rounds, and the ratios cron / base. Agent starts: one more run of each
cron side per case, not timed, under `strace -f -e trace=execve` (when strace is installed), counting the agents
started (`--node` in their argv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
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


def cli(
    path: Path, *args: str, code: Path | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`factoryctl --config path ARGS`, from the source tree `code` when given (else this interpreter's)."""
    argv = [*prefix, sys.executable, "-m", "factoryctl", "--config", str(path), *args]
    env = ENV if code is None else {**ENV, "PYTHONPATH": str(code)}
    return subprocess.run(argv, cwd="/tmp", env=env, capture_output=True, text=True, check=False)


def off_plan(path: Path) -> None:
    """Every GPU of the fleet at 700 W (a price step away from the 560 W plan)."""
    done = cli(path, "-q", "power", "set", "all", "--watts", "700", "-o", "json")
    if done.returncode != 0:
        raise SystemExit(f"power set failed: {done.stderr}")


def agent_starts(path: Path, code: Path | None, trace: Path) -> int | None:
    """Agents one `power apply all` starts (strace's execve of an argv with `--node`); None without strace."""
    if shutil.which("strace") is None:
        return None
    prefix = ("strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace))
    done = cli(path, "-q", "power", "apply", "all", "-o", "json", code=code, prefix=prefix)
    if done.returncode != 0:
        raise SystemExit(f"power apply under strace failed ({done.returncode}): {done.stderr}")
    lines = trace.read_text().splitlines()
    return sum(1 for line in lines if "execve(" in line and '"--node"' in line and "ENOENT" not in line)


def cron_run(path: Path, code: Path | None = None) -> tuple[float, float, int]:
    """(wall, CPU of the command's process tree, GPUs it changed) of one `power apply all` (from `code`, if given)."""
    before, wall = children_cpu(), time.monotonic()
    done = cli(path, "-q", "power", "apply", "all", "-o", "json", code=code)
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
    parser.add_argument("--base", type=Path, help="a source tree whose `power apply` runs beside this one's")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, dict[str, list[tuple[float, float, int]]]] = {}
    starts: dict[str, dict[str, int | None]] = {}
    for count in (int(n) for n in args.nodes.split(",")):
        paths = {side: write_fleet(args.dir / f"{side}-{count}", count) for side in sides_of(args.base)}
        config = load_config(paths["loop"])
        with contextlib.ExitStack() as stack:
            for side in ("base", "cron"):
                if side in paths:
                    cron_run(paths[side], code_of(side, args.base))  # warm-up: every GPU at plan, the zipapp built
            held = {name: stack.enter_context(agent_session(node, config, 15)) for name, node in config.nodes.items()}
            loop = PowerLoop(config, 300.0, sessions=held.get)
            loop_run(loop, 0.0)  # warm-up: imports, every GPU at plan
            idle, wall = tree_cpu(), time.monotonic()
            time.sleep(3.0)
            idle_rate = (tree_cpu() - idle) / (time.monotonic() - wall)
            print(f"{count} nodes: held fleet idle {idle_rate * 1000:.1f} ms CPU/s", flush=True)
            for case in ["at plan"] + ([] if args.no_off_plan else ["off plan"]):
                key = f"{count} {case}"
                got = results.setdefault(key, {side: [] for side in paths})
                for round_ in range(args.rounds):
                    order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                    for side in order:
                        if case == "off plan":
                            off_plan(paths[side])
                        one = (
                            loop_run(loop, idle_rate)
                            if side == "loop"
                            else cron_run(paths[side], code_of(side, args.base))
                        )
                        got[side].append(one)
                        print(f"{key} {side}: wall {one[0]:.3f} s cpu {one[1]:.3f} s changed {one[2]}", flush=True)
                starts[key] = {}
                for side in (side for side in ("base", "cron") if side in paths):
                    if case == "off plan":
                        off_plan(paths[side])
                    starts[key][side] = agent_starts(paths[side], code_of(side, args.base), args.dir / "strace.txt")
                print(f"{key} agent starts: {starts[key]}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print_table(results, starts)


def sides_of(base: Path | None) -> list[str]:
    """The sides run in each round: cron's command (and its base's, given `--base`), and the loop."""
    return ["cron", "loop"] if base is None else ["base", "cron", "loop"]


def code_of(side: str, base: Path | None) -> Path | None:
    """The source tree a cron side runs: `--base` for the base side, else this interpreter's factoryctl."""
    return base if side == "base" else None


def print_table(
    results: dict[str, dict[str, list[tuple[float, float, int]]]], starts: dict[str, dict[str, int | None]]
) -> None:
    """The markdown table: each side's wall and CPU (best / median), the ratios, the agents each cron side started."""
    with_base = any("base" in got for got in results.values())
    sides = ["base", "cron", "loop"] if with_base else ["cron", "loop"]
    head = " | ".join(f"{side} wall best / median | {side} CPU best / median" for side in sides)
    ratios = "cron / base CPU (best) | cron / base wall (best) | " if with_base else ""
    print(f"\n| nodes, case | {head} | {ratios}loop / cron CPU (best) | agent starts {', '.join(sides[:-1])} |")
    print("|---|" + "---|" * (2 * len(sides) + (2 if with_base else 0) + 2))
    for key, got in results.items():
        walls = {side: [r[0] for r in got[side]] for side in sides}
        cpus = {side: [r[1] for r in got[side]] for side in sides}
        cells = " | ".join(f"{summary(walls[side])} s | {summary(cpus[side])} s" for side in sides)
        if with_base:
            cells += f" | {min(cpus['cron']) / min(cpus['base']):.3f} | {min(walls['cron']) / min(walls['base']):.3f}"
        counted = ", ".join(str(starts.get(key, {}).get(side)) for side in sides[:-1])
        print(f"| {key} | {cells} | {min(cpus['loop']) / min(cpus['cron']):.3f} | {counted} |")


if __name__ == "__main__":
    main()
