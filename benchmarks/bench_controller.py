"""Controller and store: CPU, RSS, sample-to-store latency and drops at 1 Hz behind a real sshd; store bytes/node-day.

Three parts, each optional:

    python benchmarks/bench_controller.py --storage                      # bytes per node-day (synthetic, fast)
    python benchmarks/bench_controller.py --nodes 64 128 --measure 60    # the controller behind real sshd
    python benchmarks/bench_controller.py --nodes 256 --measure 30 --no-baseline   # CPU and RSS only
    python benchmarks/bench_controller.py --threads 32 --measure 30                # where the controller's CPU goes

Every node is a simulated 8-GPU node reached over SSH on one local sshd (MaxStartups/MaxSessions raised, from
tests/sshd_fixture.py), so the agents share this machine with the controller. The same run measures the baseline an
operator scripts today: a fresh `ssh node nvidia-smi --query-gpu=...` per node per poll, all nodes in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

QUERY = "index,power.draw,utilization.gpu,temperature.gpu,clocks.sm,memory.used"


# ---------------------------------------------------------------------------------------------------- storage


def storage(hours: float = 24.0, gpus: int = 8, interval: float = 1.0) -> dict[str, Any]:
    """Write `hours` of one node through the real Store (slow tier every 5 s), then measure the file."""
    from factoryctl.model.telemetry import GpuSample, NodeSample
    from factoryctl.store.sqlite import Store

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "factory.db"
        store = Store(path)
        start = 1_700_000_000.0
        steps = int(hours * 3600 / interval)
        energy = [0.0] * gpus
        batch: list[NodeSample] = []
        flags: list[bool] = []
        for step in range(steps):
            t = start + step * interval
            gs = []
            for i in range(gpus):
                power = 300 + 250 * rng.random()
                energy[i] += power * interval
                gs.append(
                    GpuSample(
                        "n001",
                        i,
                        uuid=f"GPU-{i}",
                        power_w=round(power, 3),
                        utilization_pct=float(rng.randint(0, 100)),
                        sm_clock_mhz=float(rng.choice((1755, 1980))),
                        memory_used_mib=float(rng.randint(0, 81559)),
                        energy_j=round(energy[i], 3),
                        temperature_c=float(rng.randint(40, 80)),
                        ecc_uncorrected=0,
                        throttle_reasons=("SwPowerCap",) if power > 500 else (),
                    )
                )
            batch.append(NodeSample("n001", t, gpus=tuple(gs)))
            flags.append(step % int(5 / interval) == 0)
            if len(batch) == 600:
                store.write(batch, flags)
                batch, flags = [], []
        if batch:
            store.write(batch, flags)
        raw_bytes = _table_bytes(store, path)
        store.rollup(now=start + hours * 3600 + 600)
        total = _table_bytes(store, path)
        rows = store.count_rows()
        store.close()
    rollup_bytes = total - raw_bytes
    per_day = 24.0 / hours
    return {
        "gpus": gpus,
        "interval_s": interval,
        "raw_rows": rows["sample"],
        "raw_bytes_per_node_day": int(raw_bytes * per_day),
        "raw_bytes_per_row": round(raw_bytes / max(rows["sample"], 1), 1),
        "rollup_bytes_per_node_day": int(rollup_bytes * per_day),
        "steady_state_bytes_per_node_6h_raw_30d_rollups": int(raw_bytes * per_day * 0.25 + rollup_bytes * per_day * 30),
    }


def read_live_cost(nodes: int = 256, gpus: int = 8, runs: int = 5) -> dict[str, Any]:
    """What `nodes list` / `gpus` pay with a live controller: `read_live` over a store of `nodes` nodes."""
    from factoryctl.config import parse_config
    from factoryctl.model.telemetry import GpuSample, NodeSample
    from factoryctl.store.lock import ControllerLock
    from factoryctl.store.rows import NodeState
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.latest import read_live

    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(f"nodes:\n  b[1-{nodes}]: {{transport: local}}\n", Path(tmp) / "f.yaml", Path(tmp) / "s")
        store = Store(config.store_path)
        now = time.time()
        full = {"uuid": "GPU-x", "name": "H100", "power_w": 300.0, "power_limit_w": 700.0, "temperature_c": 50.0}
        store.write(
            [NodeSample(n, now, gpus=tuple(GpuSample(n, i, **full) for i in range(gpus))) for n in config.nodes],
            states=[NodeState(n, "up", now, now) for n in config.nodes],
        )
        lock = ControllerLock(config.state_dir)
        lock.acquire()
        timings = []
        for _ in range(runs):
            t0 = time.perf_counter()
            result = read_live(config, now=now)
            timings.append(time.perf_counter() - t0)
            assert result is not None
        lock.release()
        store.close()
    return {"nodes": nodes, "gpus_per_node": gpus, "read_live_ms_median": round(1000 * statistics.median(timings), 1)}


def _table_bytes(store: Any, path: Path) -> int:
    """Bytes in use in the file after a checkpoint (page count minus free pages)."""
    store._query("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = store._query("PRAGMA page_count")[0][0] - store._query("PRAGMA freelist_count")[0][0]
    return int(pages * store._query("PRAGMA page_size")[0][0])


# ---------------------------------------------------------------------------------------------------- controller


def write_config(tmp: Path, server: Any, nodes: int, interval: float) -> Path:
    known = server.write_known_hosts(tmp / "known_hosts")
    width = len(str(nodes))
    text = (
        f"name: bench\nstate_dir: {tmp / 'state'}\n"
        f"ssh: {{user: {server.user}, identity_file: {server.user_key}, known_hosts: {known}, connect_timeout_s: 60}}\n"
        f"nodes:\n  b[{1:0{width}d}-{nodes:0{width}d}]: {{host: 127.0.0.1, port: {server.port}, sim: h100-sxm, gpus: 8}}\n"
        f"controller:\n  interval_s: {interval}\n"
    )
    path = tmp / "factory.yaml"
    path.write_text(text)
    return path


def _query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    from factoryctl.store.sqlite import Store, StoreError

    try:
        store = Store(db, readonly=True)
    except StoreError:
        return []
    try:
        return store._query(sql, params)
    except StoreError:
        return []
    finally:
        store.close()


def run_controller(tmp: Path, config: Path, nodes: int, measure: float, interval: float) -> dict[str, Any]:
    db = tmp / "state" / "factory.db"
    argv = [
        sys.executable,
        "-c",
        "from factoryctl.cli.app import main; main()",
        "--config",
        str(config),
        "controller",
        "run",
        "--log-level",
        "warning",
    ]
    log = (tmp / "controller.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stderr=log)
    controller = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 60 + nodes * 3
        while True:
            up = _query(db, "SELECT COUNT(*) FROM node WHERE state = 'up'")
            if up and up[0][0] >= nodes:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"only {up[0][0] if up else 0} of {nodes} nodes came up; see {tmp}/controller.log")
            time.sleep(1)
        warmup = time.monotonic() - started
        time.sleep(10)  # settle: connection bursts are over
        t0, cpu0 = time.time(), controller.cpu_times()
        rss: list[int] = []
        while time.time() - t0 < measure:
            rss.append(controller.memory_info().rss)
            time.sleep(1)
        t1, cpu1 = time.time(), controller.cpu_times()
        threads = controller.num_threads()
        time.sleep(2 * interval)  # let the last samples of the window land
        stats_raw = _query(db, "SELECT value FROM meta WHERE key = 'controller_stats'")
        stored = _query(
            db,
            "SELECT COUNT(*) FROM (SELECT DISTINCT node_id, t_ms FROM sample WHERE t_ms >= ? AND t_ms < ?)",
            (int(t0 * 1000), int(t1 * 1000)),
        )[0][0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    stats = json.loads(stats_raw[0][0]) if stats_raw else {}
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    expected = int(nodes * (t1 - t0) / interval)
    return {
        "nodes": nodes,
        "gpus": nodes * 8,
        "warmup_s": round(warmup, 1),
        "controller_cpu_pct_of_one_core": round(100 * busy / (t1 - t0), 2),
        "controller_cpu_ms_per_sweep": round(1000 * busy / ((t1 - t0) / interval), 1),
        "rss_mib_max": round(max(rss) / 2**20, 1),
        "threads": threads,
        "threads_per_node": round(threads / nodes, 2),
        "latency_p50_ms": round(1000 * stats["latency_p50_s"], 1) if stats.get("latency_p50_s") else None,
        "latency_p99_ms": round(1000 * stats["latency_p99_s"], 1) if stats.get("latency_p99_s") else None,
        "samples_expected": expected,
        "samples_stored": stored,
        "samples_dropped": max(0, expected - stored),
        "writer_dropped": stats.get("dropped"),
        "machine_load_1m": round(os.getloadavg()[0], 2),
    }


def thread_breakdown(tmp: Path, server: Any, nodes: int, seconds: float) -> dict[str, Any]:
    """The collector in this process; CPU per thread family (paramiko transport, agent session, writer, links)."""
    import collections
    import threading

    from factoryctl.config import load_config
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.collector import Collector

    config = load_config(write_config(tmp, server, nodes, 1.0))
    collector = Collector(config, Store(config.store_path))
    collector.start()
    deadline = time.time() + 60 + nodes * 3
    while sum(s.state == "up" for s in collector.writer.states().values()) < nodes and time.time() < deadline:
        time.sleep(1)
    time.sleep(5)
    me = psutil.Process()

    def family(thread: threading.Thread) -> str:
        import paramiko

        if isinstance(thread, paramiko.Transport):
            return "paramiko transport"
        for prefix in ("agent-stderr", "agent", "link", "ssh-watch"):
            if thread.name.startswith(prefix):
                return prefix
        return thread.name

    def snapshot() -> tuple[collections.Counter[str], collections.Counter[str]]:
        kinds = {t.native_id: family(t) for t in threading.enumerate()}
        cpu: collections.Counter[str] = collections.Counter()
        count: collections.Counter[str] = collections.Counter()
        for t in me.threads():
            kind = kinds.get(t.id, "?")
            cpu[kind] += t.user_time + t.system_time
            count[kind] += 1
        return cpu, count

    (before, _), t0 = snapshot(), time.time()
    time.sleep(seconds)
    (after, count), t1 = snapshot(), time.time()
    collector.stop()
    per_sample = {k: round(1000 * (after[k] - before[k]) / (t1 - t0) / nodes, 3) for k in after}
    return {
        "nodes": nodes,
        "ms_per_node_sample": {k: v for k, v in sorted(per_sample.items(), key=lambda kv: -kv[1]) if v > 0},
        "cpu_pct_of_one_core": round(100 * sum(after[k] - before[k] for k in after) / (t1 - t0), 2),
        "threads": dict(count.most_common()),
        "threads_per_node": round(sum(count.values()) / nodes, 2),
    }


def run_baseline(server: Any, tmp: Path, nodes: int, sweeps: int) -> dict[str, Any]:
    """A fresh `ssh node nvidia-smi --query-gpu=...` per node per poll, every node in parallel (pdsh style)."""
    from factoryctl.sim.smi import write_shim

    write_shim(server.bin_dir / "nvidia-smi", node="baseline", state_dir=str(tmp / "smi-state"), factory="bench")
    known = tmp / "known_hosts"
    argv = [
        "ssh",
        "-q",
        "-i",
        str(server.user_key),
        "-p",
        str(server.port),
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        f"{server.user}@127.0.0.1",
        "nvidia-smi",
        f"--query-gpu={QUERY}",
        "--format=csv,noheader,nounits",
    ]
    walls, cpus, machine, failures = [], [], [], 0
    for _ in range(sweeps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine0 = psutil.cpu_times()
        t0 = time.monotonic()
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(nodes)]
        for p in procs:
            out, _ = p.communicate(timeout=300)
            failures += p.returncode != 0 or len(out.splitlines()) != 8
        walls.append(time.monotonic() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine1 = psutil.cpu_times()
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        machine.append(sum(machine1[:3]) - sum(machine0[:3]))
        time.sleep(1)
    return {
        "nodes": nodes,
        "sweeps": sweeps,
        "sweep_wall_s_median": round(statistics.median(walls), 2),
        "client_cpu_ms_per_sweep": round(1000 * statistics.median(cpus), 1),
        "machine_cpu_ms_per_sweep": round(1000 * statistics.median(machine), 1),
        "failed_polls": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", action="store_true", help="measure store bytes per node-day")
    parser.add_argument("--storage-hours", type=float, default=24.0)
    parser.add_argument("--nodes", type=int, nargs="*", default=[], help="node counts to run the controller at")
    parser.add_argument("--measure", type=float, default=60.0, help="measured seconds per node count")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-sweeps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU per thread family at this many nodes (in-process)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.storage:
        results["storage"] = storage(args.storage_hours)
        results["read_live"] = read_live_cost()
        print(json.dumps({"storage": results["storage"], "read_live": results["read_live"]}), flush=True)
    if args.nodes or args.threads:
        from sshd_fixture import start_sshd

        if args.threads:
            with tempfile.TemporaryDirectory(prefix="bench-ctl-") as name:
                os.environ["FACTORYCTL_REMOTE_CACHE"] = str(Path(name) / "remote-cache")
                server = start_sshd(Path(name) / "sshd")
                try:
                    results["threads"] = thread_breakdown(Path(name), server, args.threads, args.measure)
                finally:
                    server.stop()
                print(json.dumps({"threads": results["threads"]}), flush=True)
        for nodes in args.nodes:
            with tempfile.TemporaryDirectory(prefix="bench-ctl-") as name:
                tmp = Path(name)
                os.environ["FACTORYCTL_REMOTE_CACHE"] = str(tmp / "remote-cache")
                os.environ.pop("SSH_AUTH_SOCK", None)
                server = start_sshd(tmp / "sshd")
                try:
                    config = write_config(tmp, server, nodes, args.interval)
                    row: dict[str, Any] = {
                        "controller": run_controller(tmp, config, nodes, args.measure, args.interval)
                    }
                    if not args.no_baseline:
                        row["baseline"] = run_baseline(server, tmp, nodes, args.baseline_sweeps)
                        ctl = row["controller"]["controller_cpu_ms_per_sweep"]
                        row["baseline_over_controller_cpu"] = round(row["baseline"]["client_cpu_ms_per_sweep"] / ctl, 1)
                finally:
                    server.stop()
                results[str(nodes)] = row
                print(json.dumps({str(nodes): row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
