"""Agent cost: CPU and RSS of one agent streaming 8 simulated GPUs at 1 Hz (budget: < 1% of a core, < 40 MiB).

Runs the real zipapp as a subprocess, as the controller does, asks it to stream, drains the samples and measures
the agent process with psutil after a warm-up. Usage:

    python benchmarks/bench_agent.py [--duration 60] [--gpus 8] [--interval 1.0] [--slow-interval 5] [--bare]
    python benchmarks/bench_agent.py --compare [--before OLD.pyz] [...]

`--bare` runs the agent as `python -I -S` (no site-packages, so no psutil: host metrics come from /proc), like a
node that has nothing but python3. `--slow-interval` is the stream's `slow_interval_s` (the slow tier: temperature,
ECC, memory, energy; the controller's default 5 s). `--compare` runs two agents side by side for the same seconds:
one reading every field on every sample (`slow_interval_s` = the interval, as agents did before sampling tiers) and
one with the slow tier, and reports both and the ratio. `--before` adds a third agent, run from another zipapp
(e.g. one built from an older commit, see benchmarks/README.md) in the same seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from factoryctl.transport.bundle import agent_zipapp


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (after a 3 s warm-up)")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--slow-interval", type=float, default=5.0, help="the stream's slow_interval_s")
    parser.add_argument("--compare", action="store_true", help="also run an agent reading every field every sample")
    parser.add_argument("--before", type=Path, metavar="PYZ", help="also run this (older) agent zipapp side by side")
    parser.add_argument("--bare", action="store_true", help="run the agent with -I -S (no psutil)")
    return parser.parse_args()


def measure(args: argparse.Namespace, zipapp: Path, slow_interval: float, out: dict[str, Any]) -> None:
    """Stream from one agent for `args.duration` seconds after a warm-up; fill `out` with what it cost."""
    with tempfile.TemporaryDirectory() as state:
        argv = [sys.executable, *(["-I", "-S"] if args.bare else []), str(zipapp), "--node", "bench"]
        argv += ["--sim", "h100-sxm"]
        argv += ["--gpus", str(args.gpus), "--state-dir", state]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert proc.stdin is not None
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # hello
        samples = []

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                msg = json.loads(line)
                if msg.get("type") == "sample":
                    samples.append(msg)

        threading.Thread(target=drain, daemon=True).start()
        request = {"id": 1, "op": "stream", "interval_s": args.interval, "slow_interval_s": slow_interval}
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        agent = psutil.Process(proc.pid)
        time.sleep(3.0)
        cpu0, t0, n0 = agent.cpu_times(), time.monotonic(), len(samples)
        rss_peak = 0
        while time.monotonic() - t0 < args.duration:
            rss_peak = max(rss_peak, agent.memory_info().rss)
            time.sleep(0.5)
        cpu1, t1, n1 = agent.cpu_times(), time.monotonic(), len(samples)
        proc.stdin.close()
        proc.wait(timeout=10)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    out.update(
        {
            "gpus": args.gpus,
            "interval_s": args.interval,
            "slow_interval_s": slow_interval,
            "measured_s": round(t1 - t0, 1),
            "samples": n1 - n0,
            "cpu_s": round(busy, 3),
            "cpu_pct_of_one_core": round(100.0 * busy / (t1 - t0), 3),
            "rss_peak_mib": round(rss_peak / 2**20, 1),
            "python": sys.version.split()[0],
            "bare": args.bare,
        }
    )


def main() -> int:
    args = _arguments()
    current = agent_zipapp()
    runs: dict[str, tuple[Path, float]] = {"tiered": (current, args.slow_interval)}
    if args.compare:
        runs = {"every_field_every_sample": (current, args.interval), **runs}
    if args.before is not None:
        runs = {"before": (args.before, args.slow_interval), **runs}  # an older agent ignores slow_interval_s
    outs: dict[str, dict[str, Any]] = {name: {} for name in runs}
    threads = [threading.Thread(target=measure, args=(args, *runs[name], outs[name])) for name in runs]
    for thread in threads:  # side by side: the same seconds on the same machine
        thread.start()
    for thread in threads:
        thread.join()
    result: dict[str, Any] = dict(outs["tiered"])
    if len(outs) > 1:
        result = dict(outs)
        for name in ("every_field_every_sample", "before"):
            if name in outs:
                ratio = outs["tiered"]["cpu_s"] / outs[name]["cpu_s"] if outs[name]["cpu_s"] else None
                result[f"cpu_ratio_tiered_to_{name}"] = None if ratio is None else round(ratio, 3)
    print(json.dumps(result, indent=2))
    tiered = outs["tiered"]
    ok = tiered["cpu_pct_of_one_core"] < 1.0 and tiered["rss_peak_mib"] < 40
    print("within budget (< 1% of a core, < 40 MiB)" if ok else "OVER BUDGET", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
