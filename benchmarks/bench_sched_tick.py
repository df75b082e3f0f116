"""Scheduling passes: a whole `run_tick` (what `sched tick` and the controller's jobs loop run) on a real store.

bench_scheduler.py times the pure `schedule`; a live pass also reads the queue and the nodes from the store, writes
every waiting job's reason (compare-and-set, with events), keeps the scheduler's memory, and talks to the nodes.
Two fleets, each pass timed whole (wall and process CPU) and by step (the steps are `jobs.tick`'s own calls, timed
by wrapping them where tick.py looks them up, so the same script times any commit with the same tick.py):

- drained, busy: 1,000 known nodes x 8 GPUs (the rows a controller's sweeps leave: one full sample per node, GPU
  facts, states; 50 down) and 10,000 pending jobs of mixed shapes (1-64 GPUs), where nothing can start and nothing
  is launched: drained, the other 950 nodes drained for maintenance; busy, every GPU of the 950 held by a running
  job (~3,100 jobs, without ranks: no node is asked). The first pass writes every job's reason; the steady pass,
  `--interval` seconds later, writes only the reasons that changed.
- launch: 64 local simulated nodes x 8 GPUs (real agents, `transport: local`, seen once by `telemetry collect`) and
  200 small jobs (1-8 GPUs, a `sleep`): the pass that launches them, then the next pass (reconcile asks every node).
  The ranks are killed after each run.

Run: python benchmarks/bench_sched_tick.py [--only drained|busy|launch] [--runs 5] [--profile FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import factoryctl
import factoryctl.jobs.tick as tick
from factoryctl.config import FactoryConfig, load_config
from factoryctl.model.job_ids import new_job_id
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.jobs import job_event
from factoryctl.store.lock import make_private_dirs
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store

#: The steps of a pass, as tick.py names them (module functions, and the Store methods it calls); a step a commit's
#: tick.py does not have (`settle_kills`, `owe_kills` came after ef443f1) is left out of its figures.
STEPS = ("reconcile", "cluster_view", "schedule", "write_changes", "launch_gangs", "settle_kills", "owe_kills")
STORE_STEPS = ("jobs", "scheduler_memory", "set_scheduler_memory")
#: The states a started gang enters: a pass's changes into them are its starts (`TickReport.entered`, gone since 24b60da).
ACTIVE = (JobState.RUNNING, JobState.STARTING)
SHAPES = ((1, 40), (2, 15), (4, 15), (8, 15), (16, 7), (32, 5), (64, 3))  # GPUs, weight


class Timings:
    """Wall seconds per step of one pass, summed over its calls, and the pass thread's CPU seconds (`<step>_cpu`):
    on a shared machine the steadier figure (the steps' own threads, a fan-out's, are not in it)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - began
                self.spent[f"{name}_cpu"] = self.spent.get(f"{name}_cpu", 0.0) + time.thread_time() - cpu

        return timed


@contextlib.contextmanager
def timed_steps(store: Store) -> Iterator[Timings]:
    """Time tick.py's steps for the block (its module globals and this store's methods), then put them back."""
    timings = Timings()
    saved = {name: getattr(tick, name) for name in STEPS if hasattr(tick, name)}
    for name, fn in saved.items():
        setattr(tick, name, timings.wrap(name, fn))
    for name in STORE_STEPS:
        setattr(store, name, timings.wrap(name, getattr(store, name)))
    try:
        yield timings
    finally:
        for name, fn in saved.items():
            setattr(tick, name, fn)
        for name in STORE_STEPS:
            delattr(store, name)


def one_pass(
    config: FactoryConfig, store: Store, now: float, profile: cProfile.Profile | None = None
) -> dict[str, Any]:
    """One `run_tick`, its wall and CPU seconds, what it changed, and its steps' wall seconds."""
    with timed_steps(store) as timings:
        wall, cpu, children = time.perf_counter(), time.process_time(), children_cpu()
        if profile is not None:
            profile.enable()
        report = tick.run_tick(config, store, now=now)
        if profile is not None:
            profile.disable()
        wall, cpu, children = time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - children
    started = sum(c.before.state is not c.after.state and c.after.state in ACTIVE for c in report.changes)
    return {"wall": wall, "cpu": cpu, "children": children, "changes": len(report.changes), "started": started,
            **timings.spent}  # fmt: skip


def children_cpu() -> float:
    """CPU seconds of the children reaped so far (the local agents a pass starts and ends)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def fresh_store(template: Path, path: Path) -> Store:
    """A copy of the closed store `template` at `path` (its state directory made private, as factoryctl does)."""
    make_private_dirs(path.parent)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, path)
    return Store(path)


# ---------------------------------------------------------------------------------------------------- idle


def idle_config(root: Path, nodes: int) -> FactoryConfig:
    """`nodes` SSH nodes of 8 GPUs in racks of 32 (never contacted: nothing runs)."""
    lines = [f"name: bench-tick\nstate_dir: {root / 'state'}\nnodes:"]
    for first in range(1, nodes + 1, 32):
        last = min(first + 31, nodes)
        lines.append(f"  g[{first:04d}-{last:04d}]: {{rack: r{first // 32 + 1:02d}, gpus: 8}}")
    path = root / "factory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


def full_gpu(node: str, index: int, rng: random.Random) -> GpuSample:
    power = 60 + 20 * rng.random()
    return GpuSample(
        node, index, uuid=f"GPU-{abs(hash((node, index))):08x}-0000-0000-0000-000000000000",
        name="NVIDIA H100 80GB HBM3", utilization_pct=0.0, memory_used_mib=1.0, memory_total_mib=81559.0,
        power_w=round(power, 3), power_limit_w=700.0, power_limit_min_w=200.0, power_limit_max_w=700.0,
        power_limit_default_w=700.0, energy_j=1e9 * rng.random(), temperature_c=float(rng.randint(28, 36)),
        temperature_slowdown_c=87.0, sm_clock_mhz=345.0, ecc_uncorrected=0,
    )  # fmt: skip


def fill_nodes(config: FactoryConfig, store: Store, now: float, down: int, drain: bool) -> None:
    """What a controller's sweeps leave: one full sample per node, every node's state; `down` lost, the rest drained
    when `drain` (a maintenance window)."""
    rng = random.Random(5)
    names = list(config.nodes)
    up, gone = names[: len(names) - down], names[len(names) - down :]
    samples = [NodeSample(n, now - 1, agent_version="bench", backend="nvml",
                          gpus=tuple(full_gpu(n, i, rng) for i in range(8))) for n in names]  # fmt: skip
    store.write(samples, states=[NodeState(n, "up", now - 86400, now - 1) for n in names], stored_at=now - 1)
    lost = [NodeState(n, "down", now - 600, now - 600, "unreachable", "no route to host") for n in gone]
    store.write(states=lost)
    if drain:
        store.set_drained(up, True, "maintenance window: firmware upgrade", "ops")


#: Ways a busy node's 8 GPUs are shared by running jobs.
PACKINGS = ((8,), (4, 4), (4, 2, 2), (2, 2, 2, 2), (4, 2, 1, 1), (1,) * 8)


def fill_running(config: FactoryConfig, store: Store, now: float, down: int) -> int:
    """Every GPU of the up nodes held by a RUNNING job (one 16-GPU gang on each pair of every tenth pair of nodes).

    They have no ranks, so `reconcile` asks no node about them (1,000 agents are not here to answer): the pass
    reads, schedules and explains around them as around any running gang; asking nodes is measured by `launch`.
    """
    rng = random.Random(7)
    names = list(config.nodes)[: len(config.nodes) - down]
    allocations: list[tuple[GpuAllocation, ...]] = []
    for i in range(0, len(names), 2):
        if i % 20 == 0 and i + 1 < len(names):
            allocations.append((GpuAllocation(names[i], 8), GpuAllocation(names[i + 1], 8)))
            continue
        for name in names[i : i + 2]:
            allocations.extend((GpuAllocation(name, g),) for g in rng.choice(PACKINGS))
    for k, allocation in enumerate(allocations):
        gpus = sum(a.gpus for a in allocation)
        walltime = rng.choice((3600.0, 4 * 3600.0, 24 * 3600.0))
        started = now - rng.uniform(0, walltime * 0.9)
        spec = JobSpec(gpus, name=f"run-{k}", user=f"user{rng.randrange(20):02d}", command=("python", "train.py"),
                       gpus_per_node=8 if gpus > 8 else None, walltime_s=walltime, cwd="/home/u")  # fmt: skip
        job = Job(new_job_id(started - 60, rng), spec, started - 60, JobState.RUNNING, reason="running",
                  started_at=started, allocation=allocation)  # fmt: skip
        store.add_job(job)
    return len(allocations)


def fill_queue(store: Store, count: int, now: float, gpus_per_node: int = 8) -> None:
    """`count` pending jobs of mixed shapes, submitted over the last day, each with its submit event."""
    rng = random.Random(11)
    shapes = [s for s, w in SHAPES for _ in range(w)]
    for i in range(count):
        at = now - 86400 + i * 86400 / count
        gpus = rng.choice(shapes)
        spec = JobSpec(
            gpus, name=f"train-{i}", user=f"user{rng.randrange(20):02d}",
            command=("python", "train.py", "--config", f"cfg{i}.yaml"),
            gpus_per_node=gpus_per_node if gpus > gpus_per_node else None,
            priority=rng.choice((0, 0, 0, 0, 1, 5)), walltime_s=rng.choice((3600.0, 4 * 3600.0, 24 * 3600.0)),
            deferrable=rng.random() < 0.05, cwd="/home/u",
        )  # fmt: skip
        job = Job(new_job_id(at, rng), spec, at)
        store.add_job(job, [job_event(job, at)])


def bench_idle(
    root: Path, fleet: str, nodes: int, jobs: int, runs: int, interval: float, profile: str | None
) -> list[dict]:
    """`fleet` drained: every up node drained; busy: every GPU of the up nodes held by a running job."""
    config = idle_config(root, nodes)
    now = time.time()
    template = root / "template.db"
    store = Store(template)
    fill_nodes(config, store, now, down=nodes // 20, drain=fleet == "drained")
    if fleet == "busy":
        fill_running(config, store, now, down=nodes // 20)
    fill_queue(store, jobs, now)
    store.close()
    results = []
    for run in range(runs):
        store = fresh_store(template, config.store_path)
        prof = cProfile.Profile() if profile and run == 0 else None
        first = one_pass(config, store, now, prof)
        steady = one_pass(config, store, now + interval)
        store.close()
        results.append({"first": first, "steady": steady})
        if prof is not None:
            prof.dump_stats(f"{profile}.{fleet}")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return results


# ---------------------------------------------------------------------------------------------------- launch


#: What each rank runs: a sleep whose command line names no other process (`ranks_gone` waits on it).
RANK = ("sleep", "3600.26")


def ranks_gone(root: Path, within_s: float = 30.0) -> None:
    """Wait until no rank of this benchmark is left: its command, and its wrapper (which names its directory under
    `root`), whose last act after its rank was killed is to write the rank's record and the simulated GPUs' load."""
    mark = str(root).encode()
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for proc in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                argv = proc.read_bytes().split(b"\0")
                if argv[:2] == [arg.encode() for arg in RANK] or any(mark in arg for arg in argv):
                    alive.append(proc.parent.name)
        if not alive:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"ranks still running after {within_s:g} s: pids {', '.join(alive)}")
        time.sleep(0.2)


def launch_config(root: Path, nodes: int) -> FactoryConfig:
    path = root / "factory.yaml"
    path.write_text(
        f"name: bench-tick-launch\nstate_dir: {root / 'state'}\nnodes:\n"
        f"  s[01-{nodes:02d}]: {{transport: local, sim: {{profile: h100-sxm, gpus: 8}}}}\n"
    )
    return load_config(path)


def bench_launch(root: Path, nodes: int, jobs: int, runs: int, interval: float) -> list[dict]:
    from factoryctl.jobs.leftovers import kill_launches, launches_of  # reconcile's kill_gangs until f4ec357

    config = launch_config(root, nodes)
    swept = subprocess.run(
        [sys.executable, "-P", "-m", "factoryctl", "--config", str(config.path), "-q", "telemetry", "collect", "--once"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if swept.returncode != 0:
        raise SystemExit(f"telemetry collect failed: {swept.stderr}")
    template = root / "template.db"
    shutil.copy(config.store_path, template)
    rng = random.Random(13)
    results = []
    for _ in range(runs):
        store = fresh_store(template, config.store_path)
        now = time.time()
        for i in range(jobs):
            spec = JobSpec(rng.choice((1, 1, 1, 2, 2, 4, 8)), name=f"small-{i}", user="bench",
                           command=RANK, walltime_s=3600.0, cwd=str(root))  # fmt: skip
            store.add_job(Job(new_job_id(now - jobs + i, rng), spec, now - jobs + i))
        try:
            launched = one_pass(config, store, time.time())
            following = one_pass(config, store, time.time() + interval)
        finally:
            kill_launches(config, launches_of(store.jobs(states=(JobState.STARTING, JobState.RUNNING))), "KILL")
            ranks_gone(root)
        store.close()
        results.append({"launch": launched, "next": following})
    return results


# ---------------------------------------------------------------------------------------------------- report


def summarize(title: str, results: list[dict]) -> None:
    """Medians per pass: wall and CPU (this process; agents: its reaped children), then each step's wall / CPU."""
    print(f"\n## {title} ({len(results)} runs; medians, ms; steps: wall / CPU of the pass's thread)")
    steps = STEPS + STORE_STEPS
    print("| pass | wall | CPU | agents' CPU | changes | started | " + " | ".join(steps) + " | other (wall) |")
    print("|---|---|---|---|---|---|" + "---|" * (len(steps) + 1))
    for which in results[0]:
        rows = [r[which] for r in results]

        def med(key: str, rows: list[dict] = rows) -> float:
            return 1000 * statistics.median(r.get(key, 0.0) for r in rows)

        other = 1000 * statistics.median(r["wall"] - sum(r.get(k, 0.0) for k in steps) for r in rows)
        cells = " | ".join(f"{med(k):.1f} / {med(k + '_cpu'):.1f}" for k in steps)
        print(
            f"| {which} | {med('wall'):.1f} | {med('cpu'):.1f} | {med('children'):.1f} | {med('changes') / 1000:.0f} "
            f"| {med('started') / 1000:.0f} | {cells} | {other:.1f} |"
        )
        share = statistics.median(r.get("schedule_cpu", 0.0) / r["cpu"] for r in rows if r["cpu"])
        walls = ", ".join(f"{r['wall'] * 1000:.0f}" for r in rows)
        print(f"<!-- {which}: walls {walls}; the pure schedule's share of the pass's CPU {share:.1%} -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("drained", "busy", "launch"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1000, help="idle fleet's nodes")
    parser.add_argument("--jobs", type=int, default=10_000, help="idle fleet's pending jobs")
    parser.add_argument("--local-nodes", type=int, default=64)
    parser.add_argument("--local-jobs", type=int, default=200)
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between the two passes (scheduler.interval)"
    )
    parser.add_argument("--profile", help="cProfile the first pass of each idle fleet's run 1 into FILE.<fleet>")
    parser.add_argument("--json", help="also write every run's figures (seconds) to this file")
    parser.add_argument("--workdir", help="keep the stores here (default: a temporary directory)")
    args = parser.parse_args()
    print(f"factoryctl: {Path(factoryctl.__file__).parent}")
    everything: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=args.workdir, ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        for fleet in ("drained", "busy"):
            if args.only in (None, fleet):
                (root / fleet).mkdir()
                found = bench_idle(root / fleet, fleet, args.nodes, args.jobs, args.runs, args.interval, args.profile)
                summarize(f"{fleet}: {args.nodes} nodes x 8 GPUs, {args.jobs} pending, nothing starts", found)
                everything[fleet] = found
        if args.only in (None, "launch"):
            (root / "launch").mkdir()
            launch = bench_launch(root / "launch", args.local_nodes, args.local_jobs, args.runs, args.interval)
            summarize(f"launch: {args.local_nodes} local nodes x 8 GPUs, {args.local_jobs} small jobs", launch)
            everything["launch"] = launch
    if args.json:
        Path(args.json).write_text(json.dumps({"factoryctl": factoryctl.__file__, **everything}, indent=1))


if __name__ == "__main__":
    main()
