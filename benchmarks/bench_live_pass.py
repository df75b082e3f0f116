"""The live scheduling pass at DESIGN.md's size, two trees side by side: what a pass costs beyond the pure `schedule`.

bench_scheduler.py times `schedule()` alone (~70 ms for 1,000 nodes x 8 GPUs and 10,000 pending jobs, the 100 ms
budget); a live pass (`sched tick`, the controller's jobs loop) also takes the pass lock, reads the queue from the
store and parses its records, reads the nodes, writes the reasons that changed and keeps the scheduler's memory.
The fleet: 1,000 SSH nodes x 8 GPUs known to the store (a full sample each, 50 down, the other 950 drained for
maintenance, never contacted), 300 RUNNING 8-GPU jobs on them (without ranks: no node is asked; nodes' answers are
bench_pass_sessions.py's), 10,000 pending jobs of 1-64 GPUs (bench_sched_tick.py's queue). Nothing can start, so
every pass reads everything, and the first writes 10,000 reasons. Passes, each timed whole and by step:

- first: a fresh connection's pass that writes every reason (the first `sched tick`, a controller's first pass);
- next: the same connection's next pass, `--interval` later: nothing changed, but it reads 10,000 records that the
  first pass rewrote (a connection learns records by reading them);
- steady: the pass after, nothing changed since the last read (the controller's usual pass);
- others wrote: the same connection's pass after another connection submitted 50 jobs and cancelled 50;
- one-shot: a steady pass on a fresh connection (each `sched tick` from cron opens the store anew).

The steps: `jobs` (the queue read), the nodes read (`latest`, every node's newest sample parsed; `node_health` in a
tree whose tick.py reads only each node's state and health), `schedule`, `write_changes`, `set_scheduler_memory`.

Run: python benchmarks/bench_live_pass.py --tree base=/tmp/scratch/livepass/base --tree head=. [--rounds 3]
Each round runs every tree in a fresh process (PYTHONPATH=tree), alternating their order; one store template, made
by the first worker, is copied for every run. `--profile FILE` cProfiles each worker's steady pass into FILE.<tree>.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_sched_tick import Timings, fill_nodes, fill_queue, fresh_store, idle_config, timed_steps

import factoryctl
import factoryctl.jobs.tick as tick
from factoryctl.config import FactoryConfig
from factoryctl.model.job_ids import new_job_id
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.store.jobs import job_event
from factoryctl.store.sqlite import Store

PASSES = ("first", "next", "steady", "others wrote", "one-shot")
STEPS = ("jobs", "latest", "node_health", "schedule", "write_changes", "set_scheduler_memory")
#: The Store's node reads a pass may make (`node_health` since session 28; a tree without it has no such step).
NODE_READS = ("latest", "node_health")


def fill_running(store: Store, names: list[str], now: float, count: int) -> None:
    """`count` RUNNING 8-GPU jobs, one a node, without ranks (no node is asked about them)."""
    rng = random.Random(3)
    for k, node in enumerate(names[:count]):
        started = now - rng.uniform(60, 3000)
        spec = JobSpec(8, name=f"run-{k}", user="ops", command=("python", "train.py"), walltime_s=4 * 3600.0)
        job = Job(new_job_id(started - 60, rng), spec, started - 60, JobState.RUNNING, reason=f"running on {node}",
                  started_at=started, allocation=(GpuAllocation(node, 8),))  # fmt: skip
        store.add_job(job)


def others_write(path: Path, now: float, count: int) -> None:
    """What `jobs submit` and `jobs cancel` do between passes, on a connection of their own: `count` of each."""
    rng = random.Random(17)
    other = Store(path)
    for job in other.jobs(states=(JobState.PENDING,))[:count]:
        cancelled = job.evolve(state=JobState.CANCELLED, reason="cancelled by bench", ended_at=now)
        other.update_job(cancelled, JobState.PENDING, [job_event(cancelled, now)])
    for i in range(count):
        at = now + i / 1000  # a millisecond apart: an id's time part
        job = Job(new_job_id(at, rng), JobSpec(rng.choice((1, 2, 8)), name=f"late-{i}", command=("true",)), at)
        other.add_job(job, [job_event(job, now)])
    other.close()


def timed_pass(
    config: FactoryConfig, store: Store, now: float, profile: cProfile.Profile | None = None
) -> dict[str, float]:
    """One `run_tick`: wall and CPU seconds, the changes it wrote, and its steps (wall and `<step>_cpu`)."""
    reads = [name for name in NODE_READS if hasattr(store, name)]
    with timed_steps(store) as timings:
        nodes = Timings()
        for name in reads:
            setattr(store, name, nodes.wrap(name, getattr(store, name)))
        wall, cpu = time.perf_counter(), time.process_time()
        with profile or contextlib.nullcontext():
            report = tick.run_tick(config, store, now=now)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        for name in reads:
            delattr(store, name)
    return {"wall": wall, "cpu": cpu, "changes": len(report.changes), **timings.spent, **nodes.spent}


def make_template(template: Path, root: Path, now: float) -> None:
    """The fleet's store at `template` (module docstring)."""
    root.mkdir(parents=True)
    config = idle_config(root, 1000)
    store = Store(template)
    fill_nodes(config, store, now, down=50, drain=True)
    fill_running(store, list(config.nodes), now, 300)
    fill_queue(store, 10_000, now)
    store.close()


def worker(args: argparse.Namespace) -> None:
    """One tree's passes (this process imports factoryctl from PYTHONPATH), as JSON on stdout."""
    root = Path(args.workdir)
    now = float(args.now)
    template = Path(args.template)
    if not template.exists():
        make_template(template, root / "make", now)
    (root / args.name).mkdir(exist_ok=True)
    config = idle_config(root / args.name, 1000)
    profile = cProfile.Profile() if args.profile else None
    store = fresh_store(template, config.store_path)
    out = {"factoryctl": factoryctl.__file__, "first": timed_pass(config, store, now)}
    out["next"] = timed_pass(config, store, now + args.interval)
    out["steady"] = timed_pass(config, store, now + 1.5 * args.interval)
    others_write(config.store_path, now + args.interval, 50)
    out["others wrote"] = timed_pass(config, store, now + 2 * args.interval)
    if profile is not None:  # one more steady pass, not in the figures
        timed_pass(config, store, now + 2.5 * args.interval, profile)
        profile.dump_stats(f"{args.profile}.{args.name}")
    store.close()
    store = Store(config.store_path)
    out["one-shot"] = timed_pass(config, store, now + 3 * args.interval)
    store.close()
    print(json.dumps(out))


def run_side(args: argparse.Namespace, name: str, tree: str, template: Path, now: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, __file__, "--worker", "--name", name, "--workdir", str(Path(args.workdir).resolve()),
            "--template", str(template), "--now", repr(now), "--interval", str(args.interval)]  # fmt: skip
    if args.profile:
        argv += ["--profile", args.profile]
    done = subprocess.run(argv, env=env, cwd="/tmp", capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr}")
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    print(f"# {name}: factoryctl from {found['factoryctl']}", file=sys.stderr)
    return found


def report(trees: list[str], runs: dict[str, list[dict[str, Any]]]) -> None:
    """Medians (ms) per pass: wall and CPU per tree, their ratio to the first tree, then each tree's steps' CPU."""

    def med(name: str, which: str, key: str) -> float:
        return 1000 * statistics.median(r[which].get(key, 0.0) for r in runs[name])

    base, *others = trees
    n = len(runs[base])
    print(f"\n{n} runs a tree; medians, ms (CPU: this process; steps: CPU of the pass's thread)\n")
    head = " | ".join(f"CPU {t} | wall {t}" + (f" | {t} / {base} CPU" if t != base else "") for t in trees)
    print(f"| pass | {head} | changes |")
    print("|---|" + "---|" * (2 * len(trees) + len(others) + 1))
    for which in PASSES:
        cells = []
        for t in trees:
            cells.append(f"{med(t, which, 'cpu'):.0f} | {med(t, which, 'wall'):.0f}")
            if t != base:
                cells.append(f"**{med(t, which, 'cpu') / med(base, which, 'cpu'):.2f}**")
        changes = "/".join(f"{med(t, which, 'changes') / 1000:.0f}" for t in trees)
        print(f"| {which} | {' | '.join(cells)} | {changes} |")
    print("\n| pass, tree (steps: CPU / wall) | " + " | ".join(STEPS) + " | rest |")
    print("|---|" + "---|" * (len(STEPS) + 1))
    for which in PASSES:
        for t in trees:
            cells = [f"{med(t, which, f'{s}_cpu'):.1f} / {med(t, which, s):.1f}" for s in STEPS]
            rest_cpu = med(t, which, "cpu") - sum(med(t, which, f"{s}_cpu") for s in STEPS)
            rest = med(t, which, "wall") - sum(med(t, which, s) for s in STEPS)
            print(f"| {which}, {t} | {' | '.join(cells)} | {rest_cpu:.1f} / {rest:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR (a checkout holding factoryctl/)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between passes (scheduler.interval)")
    parser.add_argument("--workdir", default="/tmp/bench_live_pass", help="the stores (removed first)")
    parser.add_argument("--profile", help="cProfile each worker's steady pass into FILE.<tree>")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--name", "--template", "--now"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    trees = [t.split("=", 1) for t in args.tree] or [["head", str(Path(__file__).resolve().parents[1])]]
    shutil.rmtree(args.workdir, ignore_errors=True)
    Path(args.workdir).mkdir(parents=True)
    template, now = Path(args.workdir).resolve() / "template.db", time.time()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    for r in range(args.rounds):
        for name, tree in trees if r % 2 == 0 else trees[::-1]:
            runs[name].append(run_side(args, name, str(Path(tree).resolve()), template, now))
    report([name for name, _ in trees], runs)


if __name__ == "__main__":
    main()
