"""Scheduler benchmarks: one pass at 1,000 nodes x 10,000 pending jobs, and a 68,000-job trace replay.

Both use jobs resampled from the Philly slice (../shared/data, never committed). Each figure is printed next to a
simple baseline measured in the same run, so the ratio survives a slower or faster machine:

- pass: our full `default` pass (public `schedule`, with reasons) and the inner `plan` against the textbook fifo pass
  and a naive greedy pass that scans every node for every job (what a first implementation does).
- replay: every policy on the 68k trace, against fifo.
- quality: the policy table on the real slice at 24 and 20 nodes x 8 GPUs, and how saturated EASY keeps it.
- robust: how often default meets the goal on jittered, busier and lighter copies of the slice at 16-28 nodes.
- preemption: default with preemption off and on (grace 300, 0, 1800 s) for a deterministic tenth of the jobs at
  priority 10, on the slice, on it and its jittered copies, and on the 68k trace (its replay time against off).
- overload: a synthetic trace offered ~353 GPUs replayed on 30 x 8 (the backlog only grows), 10k-40k jobs (100k
  without --quick): the replay must stay linear in the jobs, not quadratic in the backlog. Needs no data file.

Run: python benchmarks/bench_scheduler.py [--data FILE] [--quick] [--only MODE]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.scheduler.core import plan
from factoryctl.scheduler.decide import _build, schedule
from factoryctl.scheduler.metrics import delay_stats, job_delays, summarize
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.simulate import SimulationResult, cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob, parse_trace

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "philly_vc_ee9e8c.csv"
HIGH_PRIORITY = 10
GRACES_S = (300.0, 0.0, 1800.0)  # the default first


def best_time(fn, repeat: int) -> float:
    """CPU seconds of the fastest of `repeat` runs: on a shared machine that is the least disturbed figure."""
    times = []
    for _ in range(repeat):
        began = time.process_time()
        fn()
        times.append(time.process_time() - began)
    return min(times)


def pass_scenario(base: list[TraceJob], nodes: int, pending: int, seed: int = 1):
    """A cluster about 95% busy with resampled running jobs, and `pending` resampled queued jobs."""
    rng = random.Random(seed)
    cluster = cluster_nodes(nodes, 8, rack_size=32)
    free = {n.name: 8 for n in cluster}
    names = [n.name for n in cluster]
    jobs: list[Job] = []
    target = int(nodes * 8 * 0.95)
    used = 0
    while used < target:
        src = rng.choice(base)
        if src.num_gpus > 8:
            continue
        name = rng.choice(names)
        if free[name] < src.num_gpus:
            continue
        free[name] -= src.num_gpus
        used += src.num_gpus
        spec = JobSpec(src.num_gpus, walltime_s=max(src.walltime_s, 60.0))
        start = -rng.uniform(0, spec.walltime * 0.9)
        jobs.append(Job(f"r{len(jobs)}", spec, start, JobState.RUNNING, started_at=start,
                        allocation=(GpuAllocation(name, src.num_gpus),)))  # fmt: skip
    for i in range(pending):
        src = rng.choice(base)
        spec = JobSpec(src.num_gpus, gpus_per_node=src.gpus_per_node, walltime_s=max(src.walltime_s, 60.0),
                       priority=rng.choice([0, 0, 0, 1]))  # fmt: skip
        jobs.append(Job(f"p{i}", spec, -rng.uniform(0, 86400)))
    return cluster, jobs


def constrained_scenarios(cluster, jobs, seed: int = 3):
    """The same pass with node constraints: every job asking for a label half the nodes carry, and every job
    pinned to its own 50-node set (the worst case: 10,000 different constraints to resolve)."""
    rng = random.Random(seed)
    labelled = tuple(
        dataclasses.replace(n, labels={"pool": "train" if i % 2 else "infer"}) for i, n in enumerate(cluster)
    )
    names = [n.name for n in cluster]

    def constrain(spec):
        return [
            j if not j.state.waiting else dataclasses.replace(j, spec=dataclasses.replace(j.spec, **spec()))
            for j in jobs
        ]

    yield "every job labelled pool=train", labelled, constrain(lambda: {"labels": (("pool", "train"),)})
    yield "every job on its own 50-node set", cluster, constrain(lambda: {"nodes": tuple(rng.sample(names, 50))})


def naive_greedy_pass(cluster, jobs) -> int:
    """Baseline: for each queued job in submit order, scan all nodes for room (first fit, no index, no reservation)."""
    free = {n.name: n.gpus for n in cluster}
    for job in jobs:
        for a in job.allocation:
            free[a.node] -= a.gpus
    started = 0
    for job in sorted((j for j in jobs if j.state.waiting), key=lambda j: j.submitted_at):
        per_node = job.spec.gpus_per_node or min(job.num_gpus, 8)
        need = job.num_gpus // per_node
        chosen = [name for name, gpus in free.items() if gpus >= per_node][:need]
        if len(chosen) == need:
            for name in chosen:
                free[name] -= per_node
            started += 1
    return started


def bench_pass(base: list[TraceJob], repeat: int) -> None:
    cluster, jobs = pass_scenario(base, 1000, 10_000)
    print(f"\n## one pass: 1000 nodes x 8 GPUs, {sum(j.state.active for j in jobs)} running, 10000 pending")
    rows = []
    for name in ("fifo", "easy", "default"):
        config = POLICIES[name]
        full = best_time(lambda config=config: schedule(cluster, jobs, 0.0, config), repeat)

        def inner(config=config):
            fm, running, queue = _build(cluster, jobs, 0.0, config)
            began = time.process_time()
            plan(fm, queue, running, 0.0, config)
            return time.process_time() - began

        core = min(inner() for _ in range(repeat))
        rows.append((name, full, core))
    naive = best_time(lambda: naive_greedy_pass(cluster, jobs), repeat)
    for label, constrained_cluster, constrained_jobs in constrained_scenarios(cluster, jobs):
        full = best_time(lambda c=constrained_cluster, j=constrained_jobs: schedule(c, j, 0.0), repeat)
        rows.append((f"default, {label}", full, float("nan")))
    fifo_full = rows[0][1]
    print("| pass | schedule() CPU ms (with reasons, best of N) | plan() CPU ms (inner) | vs fifo schedule() |")
    print("|---|---|---|---|")
    for name, full, core in rows:
        inner = "-" if core != core else f"{core * 1000:.2f}"
        print(f"| {name} | {full * 1000:.1f} | {inner} | {full / fifo_full:.2f}x |")
    print(f"| naive greedy scan (baseline) | {naive * 1000:.1f} | - | {naive / fifo_full:.2f}x |")


def resample(base: list[TraceJob], count: int, seed: int = 2) -> tuple[list[TraceJob], int]:
    """`count` jobs as overlaid copies of `base`, each job jittered (submit + 0-1 h, duration x 0.5-1.5).

    Overlaying copies keeps the slice's bursts (a plain resample of inter-arrival gaps smooths them away and nothing
    ever queues); the cluster grows with the number of copies so the load stays the slice's. Returns the trace
    and the number of copies.
    """
    rng = random.Random(seed)
    copies = -(-count // len(base))
    out: list[TraceJob] = []
    for copy in range(copies):
        for job in base:
            if len(out) == count:
                break
            duration = round(job.duration_s * rng.uniform(0.5, 1.5))
            submit = job.submit_s + rng.uniform(0, 3600)
            out.append(TraceJob(f"c{copy}-{job.job_id}", round(submit, 3), duration, job.num_gpus,
                                job.gpus_per_node, 0, duration))  # fmt: skip
    return out, copies


def timed_simulate(trace: Sequence[TraceJob], nodes: int, config: SchedulerConfig) -> tuple[float, SimulationResult]:
    """One replay on `nodes` x 8 GPUs and the CPU seconds it took."""
    began = time.process_time()
    result = simulate(trace, cluster_nodes(nodes, 8), config)
    return time.process_time() - began, result


def bench_replay(base: list[TraceJob], count: int, nodes_per_copy: int, policies: list[str]) -> None:
    trace, copies = resample(base, count)
    nodes = nodes_per_copy * copies
    print(f"\n## replay: {count} jobs ({copies} jittered copies of the slice), {nodes} nodes x 8 GPUs")
    print("| policy | replay CPU s | vs fifo | passes | pass p50 ms | pass p99 ms | avg JCT s | max queue s | util |")
    print("|---|---|---|---|---|---|---|---|---|")
    fifo_time = None
    for name in policies:
        took, result = timed_simulate(trace, nodes, POLICIES[name])
        fifo_time = fifo_time or took
        s = summarize(result)
        print(f"| {name} | {took:.1f} | {took / fifo_time:.2f}x | {s['passes']} | {s['pass_time_p50_ms']:.3f} | "
              f"{s['pass_time_p99_ms']:.3f} | {s['avg_jct_s']:.0f} | {s['max_queue_s']:.0f} | "
              f"{s['gpu_utilization']:.3f} |")  # fmt: skip


def bench_quality(base: list[TraceJob]) -> None:
    print("\n## quality on the Philly slice (1,053 jobs)")
    print("| nodes x 8 | policy | avg JCT s | vs SJF | p99 queue s | max queue s | vs EASY max | util |")
    print("|---|---|---|---|---|---|---|---|")
    for nodes in (24, 20):
        stats = {name: summarize(simulate(base, cluster_nodes(nodes, 8), POLICIES[name])) for name in POLICIES}
        sjf, easy = stats["sjf"]["avg_jct_s"], stats["easy"]["max_queue_s"]
        for name, s in stats.items():
            print(f"| {nodes} | {name} | {s['avg_jct_s']:.0f} | {s['avg_jct_s'] / sjf:.3f} | {s['p99_queue_s']:.0f} | "
                  f"{s['max_queue_s']:.0f} | {s['max_queue_s'] / easy:.3f} | {s['gpu_utilization']:.3f} |")  # fmt: skip


def bench_generality(base: list[TraceJob]) -> None:
    print("\n## default vs the references at other sizes (Philly slice)")
    print(
        "| nodes x 8 | SJF avg JCT s | default avg JCT s | vs SJF | EASY max queue s | default max queue s | vs EASY |"
    )
    print("|---|---|---|---|---|---|---|")
    for nodes in (16, 18, 20, 22, 24, 28, 32):
        run = {name: summarize(simulate(base, cluster_nodes(nodes, 8), POLICIES[name])) for name in POLICIES}
        sjf, easy, ours = run["sjf"]["avg_jct_s"], run["easy"]["max_queue_s"], run["default"]
        print(f"| {nodes} | {sjf:.0f} | {ours['avg_jct_s']:.0f} | {ours['avg_jct_s'] / sjf:.3f} | {easy:.0f} | "
              f"{ours['max_queue_s']:.0f} | {ours['max_queue_s'] / easy:.3f} |")  # fmt: skip


def jittered(base: list[TraceJob], seed: int, load: float) -> list[TraceJob]:
    """A copy of the slice with durations x 0.5-1.5, submits + 0-1 h, and arrivals squeezed by `load` (1.15: busier)."""
    rng = random.Random(seed)
    out = []
    for job in base:
        duration = job.duration_s * rng.uniform(0.5, 1.5)
        submit = job.submit_s / load + rng.uniform(0, 3600)
        out.append(TraceJob(job.job_id, submit, duration, job.num_gpus, job.gpus_per_node, 0, duration))
    return out


def jittered_traces(base: list[TraceJob], seeds: int) -> list[list[TraceJob]]:
    """The slice and `seeds` x 3 jittered copies of it (load x 0.85, 1, 1.15)."""
    return [base] + [jittered(base, seed, load) for seed in range(1, seeds + 1) for load in (0.85, 1.0, 1.15)]


def bench_robustness(base: list[TraceJob], seeds: int = 8, sizes: tuple[int, ...] = (16, 20, 22, 24, 28)) -> None:
    """How often default meets the goal (<= 1.15 x SJF's average JCT and <= EASY's longest wait) off the slice."""
    traces = jittered_traces(base, seeds)
    print(f"\n## default on the slice and {len(traces) - 1} jittered copies (load x 0.85, 1, 1.15)")
    print("| nodes x 8 | traces meeting the goal | geo-mean avg JCT vs SJF | geo-mean max queue vs EASY |")
    print("|---|---|---|---|")
    for nodes in sizes:
        met, log_avg, log_max = 0, 0.0, 0.0
        for trace in traces:
            run = {name: summarize(simulate(trace, cluster_nodes(nodes, 8), POLICIES[name])) for name in POLICIES}
            avg = run["default"]["avg_jct_s"] / run["sjf"]["avg_jct_s"]
            longest = run["default"]["max_queue_s"] / run["easy"]["max_queue_s"]
            met += avg <= 1.15 and longest <= 1.0
            log_avg, log_max = log_avg + math.log(avg), log_max + math.log(longest)
        count = len(traces)
        print(f"| {nodes} | {met}/{count} | {math.exp(log_avg / count):.3f} | {math.exp(log_max / count):.3f} |")


def bench_saturation(base: list[TraceJob], nodes: int) -> None:
    """Why the goal is hard on a saturated cluster: how busy EASY keeps it while its longest-waiting job waits.

    If the cluster is full during that window, every job that overtakes the longest waiter (as SJF-like orders
    do) pushes it back by its own GPU-seconds / cluster GPUs: a shorter average costs a longer maximum.
    """
    records = simulate(base, cluster_nodes(nodes, 8), POLICIES["easy"]).records
    longest = max(records, key=lambda r: r.queue_s)
    begin, end = longest.submit_s, longest.start_s
    used = sum(r.num_gpus * max(0.0, min(r.end_s, end) - max(r.start_s, begin)) for r in records)
    arrived = sum(begin < r.submit_s < end for r in records)
    print(f"\n{nodes} nodes: EASY's longest wait ({longest.job_id}, {longest.queue_s:.0f} s) sees the cluster "
          f"{used / (nodes * 8 * (end - begin)):.1%} busy; {arrived} jobs arrive meanwhile")  # fmt: skip


def with_priorities(trace: Sequence[TraceJob]) -> list[TraceJob]:
    """The slice has no priorities: a deterministic tenth of the jobs, `crc32(job_id) % 10 == 0`, get priority 10."""
    return [
        dataclasses.replace(job, priority=HIGH_PRIORITY if zlib.crc32(job.job_id.encode()) % 10 == 0 else 0)
        for job in trace
    ]


def preemption_config(grace_s: float | None) -> SchedulerConfig:
    """The default policy, with preemption and that grace period (None: preemption off)."""
    default = POLICIES["default"]
    return default if grace_s is None else dataclasses.replace(default, preemption=True, grace_s=grace_s)


def preemption_stats(trace: Sequence[TraceJob], result: SimulationResult) -> dict[str, Any]:
    """`sched simulate`'s JSON item with preemption fields, plus `high_*` delays over the priority-10 jobs."""
    stats = summarize(result, preemption=True)
    high = {job.job_id for job in trace if job.priority == HIGH_PRIORITY}
    delays = job_delays([r for r in result.records if r.job_id in high])
    stats.update(delay_stats([jct for _, jct, _ in delays], [queue for _, _, queue in delays], prefix="high_"))
    return stats


def bench_preemption_slice(base: list[TraceJob]) -> None:
    """High-priority and overall delays on the slice, preemption off and on at each grace period."""
    trace = with_priorities(base)
    print(f"\n## preemption on the Philly slice ({sum(j.priority > 0 for j in trace)} jobs at priority 10)")
    print("| nodes x 8 | preemption, grace | high avg JCT s | high avg queue s | high p50 queue s | high max queue s | "
          "all avg JCT s | all max queue s | jobs stopped | grace GPU-s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for nodes in (20, 24):
        for grace in (None, *GRACES_S):
            s = preemption_stats(trace, simulate(trace, cluster_nodes(nodes, 8), preemption_config(grace)))
            label = "off" if grace is None else f"on, {grace:.0f} s"
            stopped = f"{s['preemptions']} | {s['preempted_gpu_s']:.0f}" if grace is not None else "- | -"
            print(f"| {nodes} | {label} | {s['high_avg_jct_s']:.0f} | {s['high_avg_queue_s']:.0f} | "
                  f"{s['high_p50_queue_s']:.0f} | {s['high_max_queue_s']:.0f} | {s['avg_jct_s']:.0f} | "
                  f"{s['max_queue_s']:.0f} | {stopped} |")  # fmt: skip


def bench_preemption_robust(base: list[TraceJob], seeds: int) -> None:
    """Geometric means of on / off over the slice and its jittered copies, per size and grace period."""
    traces = [with_priorities(trace) for trace in jittered_traces(base, seeds)]
    keys = ("high_avg_jct_s", "high_avg_queue_s", "high_max_queue_s", "avg_jct_s", "max_queue_s")
    print(f"\n## preemption on the slice and {len(traces) - 1} jittered copies: geometric means of on / off")
    print("| nodes x 8 | grace | high avg JCT | high avg queue | high max queue | all avg JCT | all max queue | "
          "jobs stopped (mean) | grace GPU-h (mean) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for nodes in (20, 24):
        off = [preemption_stats(t, simulate(t, cluster_nodes(nodes, 8), preemption_config(None))) for t in traces]
        for grace in GRACES_S:
            on = [preemption_stats(t, simulate(t, cluster_nodes(nodes, 8), preemption_config(grace))) for t in traces]
            ratios = [
                math.exp(sum(math.log(a[key] / b[key]) for a, b in zip(on, off, strict=True)) / len(traces))
                for key in keys
            ]
            stopped = sum(s["preemptions"] for s in on) / len(on)
            grace_h = sum(s["preempted_gpu_s"] for s in on) / len(on) / 3600
            cells = " | ".join(f"{ratio:.3f}" for ratio in ratios)
            print(f"| {nodes} | {grace:.0f} s | {cells} | {stopped:.0f} | {grace_h:.0f} |")


def bench_preemption_replay(base: list[TraceJob], count: int) -> None:
    """What preemption costs the replay of the big resample (same priority rule), at the 24- and 20-node loads."""
    trace, copies = resample(base, count)
    trace = with_priorities(trace)
    print(f"\n## preemption (grace 300 s) on the {count}-job replay ({copies} jittered copies of the slice)")
    print("| nodes | preemption | replay CPU s | passes | pass p99 ms | avg JCT s | max queue s | high avg queue s | "
          "jobs stopped |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for per_copy in (24, 20):
        for grace in (None, GRACES_S[0]):
            took, result = timed_simulate(trace, per_copy * copies, preemption_config(grace))
            s = preemption_stats(trace, result)
            print(f"| {per_copy * copies:,} ({per_copy}-node load) | {'off' if grace is None else 'on'} | "
                  f"{took:.1f} | {s['passes']} | {s['pass_time_p99_ms']:.3f} | {s['avg_jct_s']:.0f} | "
                  f"{s['max_queue_s']:.0f} | {s['high_avg_queue_s']:.0f} | {s['preemptions']} |")  # fmt: skip


def overload_trace(count: int, seed: int = 7) -> list[TraceJob]:
    """A review's generator: Poisson arrivals every 300 s, mixed gang shapes, lognormal durations, 70% with a
    walltime of 1-3 x the duration, a few priorities. At 30 nodes x 8 GPUs the queue grows without end."""
    rng = random.Random(seed)
    rows = ["job_id,submit_time_s,duration_s,num_gpus,num_nodes,gpus_per_node,priority,walltime_s,team"]
    t = 0.0
    for i in range(count):
        t += rng.expovariate(1 / 300)
        shape = rng.choice(["1", "2", "4", "8", "12x4", "16", "32", "11", "24x8", "6"])
        nodes = per_node = ""
        if "x" in shape:
            gpus, per = (int(part) for part in shape.split("x"))
            nodes, per_node = str(gpus // per), str(per)
        else:
            gpus = int(shape)
        duration = round(rng.lognormvariate(8, 1.5), 1)
        walltime = round(duration * rng.uniform(1, 3), 1) if rng.random() < 0.7 else ""
        priority = rng.choice([0, 0, 0, 0, 1, 5, -1])
        rows.append(f"j{i},{t:.1f},{duration},{gpus},{nodes},{per_node},{priority},{walltime},t{i % 3}")
    return parse_trace(rows, source="overload")


def bench_overload(counts: Sequence[int], nodes: int = 30) -> None:
    """Replay CPU seconds per policy on growing prefixes of the overloaded trace, and per 1,000 jobs."""
    trace = overload_trace(max(counts))
    print(f"\n## overloaded replay: {nodes} nodes x 8 GPUs, ~353 GPUs offered (CPU s, and per 1,000 jobs)")
    print("| jobs | " + " | ".join(POLICIES) + " |")
    print("|---|" + "---|" * len(POLICIES))
    for count in counts:
        cells = []
        for config in POLICIES.values():
            took, _ = timed_simulate(trace[:count], nodes, config)
            cells.append(f"{took:.1f} ({took / count * 1000:.2f})")
        print(f"| {count} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and jittered copies, 10k-job replays")
    parser.add_argument(
        "--only", choices=("pass", "replay", "quality", "robust", "preemption", "overload"), default=None
    )
    parser.add_argument("--nodes-per-copy", type=int, default=24, help="replay cluster size per copy of the slice")
    parser.add_argument("--policies", default="fifo,sjf,easy,default", help="policies to replay")
    args = parser.parse_args()
    if args.only in (None, "overload"):
        bench_overload((10_000, 20_000, 40_000) if args.quick else (10_000, 20_000, 40_000, 100_000))
        if args.only:
            return
    with args.data.open(newline="") as handle:
        base = parse_trace(handle, source=str(args.data))
    if args.only in (None, "quality"):
        bench_quality(base)
        bench_generality(base)
        for nodes in (20, 24):
            bench_saturation(base, nodes)
    if args.only in (None, "robust"):
        bench_robustness(base)
    if args.only in (None, "pass"):
        bench_pass(base, repeat=3 if args.quick else 7)
    if args.only in (None, "replay"):
        count = 10_000 if args.quick else 68_000
        bench_replay(base, count, args.nodes_per_copy, args.policies.split(","))
    if args.only in (None, "preemption"):
        bench_preemption_slice(base)
        bench_preemption_robust(base, seeds=2 if args.quick else 8)
        bench_preemption_replay(base, 10_000 if args.quick else 68_000)


if __name__ == "__main__":
    main()
