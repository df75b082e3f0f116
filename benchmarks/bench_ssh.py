"""SSH telemetry sweep: persistent connections + agents vs a fresh OpenSSH client per node per poll, same run.

Starts a real OpenSSH sshd on 127.0.0.1 (as the tests do), then for N simulated nodes x G GPUs behind it:

1. factoryctl's way: one persistent paramiko connection and one long-lived agent per node; a sweep asks every agent
   for a sample (fan-out 64).
2. the operator's baseline: per node per poll a fresh `ssh node nvidia-smi --query-gpu=... --format=csv,noheader,
   nounits` (fan-out 64, like pdsh), where nvidia-smi is the simulated driver's shim.

Reports wall time and controller CPU per sweep for both (controller CPU: this process for (1); the ssh client
processes for (2)), their ratios, and connect-all time and client memory for 64 and 256 connections. Usage:

    python benchmarks/bench_ssh.py [--nodes 64] [--gpus 8] [--sweeps 10] [--connect 64,256] [--agent-starts 3]
    python benchmarks/bench_ssh.py --nodes 16 --connect '' --agent-starts 9 --no-baseline    # agent starts only

`persistent.agent_start` is the wall and CPU of starting an agent on every node at once on the open connections
(`SshTransport.start_agent`): the process's first start (the zipapp built, or read and checked if this user's cache
holds it, then uploaded to the nodes' cache, one directory for all of them here), then the median of
`--agent-starts` more (found in the nodes' cache). `--pin` pins the agent's bytes first, as `controller run`, `dash`
and `metrics serve` do when they start (`bundle.pin_contents`; skipped, `"pinned": false`, on code without it).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sshd_fixture import SshdServer, start_sshd

import factoryctl
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport.smi_query import QUERY
from factoryctl.transport.ssh import SshConnection, SshOptions
from factoryctl.transport.ssh_config import resolve
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
FANOUT = 64


def _specs(server: SshdServer, known_hosts: Path, nodes: int, gpus: int) -> list[NodeSpec]:
    return [server.node(f"sim{i:03d}", known_hosts, sim=SimSpec("h100-sxm", gpus, i)) for i in range(1, nodes + 1)]


def agent_starts(transports: list[SshTransport], pool: ThreadPoolExecutor, rounds: int) -> dict[str, float]:
    """Wall and CPU of starting an agent on every node at once, on open connections: the first start (the zipapp
    built or checked, then uploaded to each node's cache) and the median of `rounds` starts after it (cached)."""
    walls, cpus = [], []
    for _ in range(rounds + 1):
        cpu0, t0 = time.process_time(), time.perf_counter()
        sessions = list(pool.map(lambda t: t.start_agent(60), transports))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        for session in sessions:
            session.close()
    return {
        "first_wall_s": walls[0],
        "first_cpu_s": cpus[0],
        "wall_s": statistics.median(walls[1:]) if rounds else walls[0],
        "cpu_s": statistics.median(cpus[1:]) if rounds else cpus[0],
    }


def persistent_sweeps(specs: list[NodeSpec], sweeps: int, start_rounds: int) -> dict[str, object]:
    with ThreadPoolExecutor(FANOUT) as pool:
        transports = list(pool.map(lambda s: SshTransport.open(s, "bench", OPTIONS), specs))
        starts = agent_starts(transports, pool, start_rounds)
        sessions = list(pool.map(lambda t: t.start_agent(60), transports))
        list(pool.map(lambda s: s.sample(30), sessions))  # warm-up
        walls, cpus = [], []
        for _ in range(sweeps):
            cpu0, t0 = time.process_time(), time.perf_counter()
            samples = list(pool.map(lambda s: s.sample(30), sessions))
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - cpu0)
            assert all(s.gpus for s in samples)
        for session in sessions:
            session.close()
        for transport in transports:
            transport.close()
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "agent_start": starts}


def baseline_sweeps(server: SshdServer, known_hosts: Path, specs: list[NodeSpec], sweeps: int, state: str) -> dict:
    fields = ",".join(name for name, _, _ in QUERY)

    def poll(spec: NodeSpec) -> None:
        argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-i", str(server.user_key), "-p", str(server.port),
                f"{server.user}@{server.host}", "nvidia-smi", "--node", spec.name, "--factory", "bench",
                "--state-dir", state, f"--query-gpu={fields}", "--format=csv,noheader,nounits"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr

    with ThreadPoolExecutor(FANOUT) as pool:
        list(pool.map(poll, specs))  # warm-up
        walls, cpus = [], []
        for _ in range(sweeps):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            list(pool.map(poll, specs))
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def nodelay_latency(spec: NodeSpec, runs: int = 20) -> dict[str, float]:
    """Median round trip of a tiny command and of an agent sample, with TCP_NODELAY (ours) and without (paramiko's)."""
    import socket

    out: dict[str, float] = {}
    for label, nodelay in (("nodelay", 1), ("nagle", 0)):
        transport = SshTransport.open(spec, "bench", OPTIONS)
        transport.connection.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)  # type: ignore[union-attr]
        session = transport.start_agent(60)
        session.sample(30)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.sample(30)
            times.append(time.perf_counter() - t0)
        out[f"agent_sample_ms_{label}"] = 1000 * statistics.median(times)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            transport.run(["true"], 30)
            times.append(time.perf_counter() - t0)
        out[f"command_ms_{label}"] = 1000 * statistics.median(times)
        session.close()
        transport.close()
    return out


def connect_all(server: SshdServer, known_hosts: Path, count: int) -> dict[str, object]:
    """Measured in a fresh child process, so its RSS growth is the connections' and nothing else's."""
    argv = [sys.executable, __file__, "--child-connect", str(count), "--port", str(server.port),
            "--key", str(server.user_key), "--known-hosts", str(known_hosts)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def _child_connect(count: int, port: int, key: str, known_hosts: str) -> dict[str, object]:
    import getpass

    me = psutil.Process()
    specs = [
        NodeSpec(f"c{i}", "127.0.0.1", port, user=getpass.getuser(), identity_file=key, known_hosts=known_hosts)
        for i in range(count)
    ]
    resolve(specs[0])
    SshConnection.open("warm", resolve(specs[0]), OPTIONS).close()  # imports and crypto set-up out of the figure
    rss0, threads0 = me.memory_info().rss, me.num_threads()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(FANOUT) as pool:
        connections = list(pool.map(lambda s: SshConnection.open(s.name, resolve(s), OPTIONS), specs))
    wall = time.perf_counter() - t0
    rss1, threads1 = me.memory_info().rss, me.num_threads()
    for connection in connections:
        connection.close()
    return {
        "connections": count,
        "connect_all_s": wall,
        "client_rss_mib": (rss1 - rss0) / 2**20,
        "per_connection_kib": (rss1 - rss0) / 1024 / count,
        "threads_added": threads1 - threads0,
    }


def _pin_agent() -> bool:
    """Pin the agent's bytes as a long-running process does when it starts (stale_code.freeze_code); False on code
    from before 1ba65fb, which has no pinning."""
    from factoryctl.transport import bundle

    if not hasattr(bundle, "pin_contents"):
        return False
    bundle.pin_contents()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--connect", default="64,256", help="comma-separated connection counts")
    parser.add_argument("--agent-starts", type=int, default=3, help="agent starts on every node after the first")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fresh-ssh-per-poll baseline")
    parser.add_argument("--pin", action="store_true", help="pin the agent's bytes first, as the controller does")
    parser.add_argument("--child-connect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--known-hosts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_connect:
        print(json.dumps(_child_connect(args.child_connect, args.port, args.key, args.known_hosts)))
        return 0
    pinned = args.pin and _pin_agent()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_sshd(root / "sshd")
        try:
            shim = server.bin_dir / "nvidia-smi"
            shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m factoryctl.sim.smi "$@"\n')
            shim.chmod(0o755)
            known_hosts = server.write_known_hosts(root / "known_hosts")
            import os

            os.environ["FACTORYCTL_REMOTE_CACHE"] = str(root / "remote-cache")
            specs = _specs(server, known_hosts, args.nodes, args.gpus)
            persistent = persistent_sweeps(specs, args.sweeps, args.agent_starts)  # first: its first agent start
            latency = nodelay_latency(specs[0])
            baseline = None
            if not args.no_baseline:
                baseline = baseline_sweeps(server, known_hosts, specs, args.sweeps, str(root / "smi-state"))
            connects = [connect_all(server, known_hosts, int(n)) for n in args.connect.split(",") if n]
        finally:
            server.stop()
    result = {
        "nodes": args.nodes,
        "gpus_per_node": args.gpus,
        "sweeps": args.sweeps,
        "persistent": persistent,
        "baseline_fresh_ssh": baseline,
        "wall_ratio": baseline["wall_s"] / persistent["wall_s"] if baseline else None,
        "cpu_ratio": baseline["cpu_s"] / persistent["cpu_s"] if baseline else None,
        "persistent_core_pct_at_1hz": 100 * persistent["cpu_s"],  # type: ignore[operator]
        "connect": connects,
        "latency": latency,
        "threads": threading.active_count(),
        "factoryctl": factoryctl.__file__,
        "pinned": pinned,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
