"""Agent cost: CPU and RSS of one agent streaming 8 simulated GPUs at 1 Hz (budget: < 1% of a core, < 40 MiB).

Runs the real zipapp as a subprocess, as the controller does, asks it to stream, drains the samples and measures
the agent process with psutil after a warm-up. Usage:

    python benchmarks/bench_agent.py [--duration 60] [--gpus 8] [--interval 1.0] [--bare]

`--bare` runs the agent as `python -I -S` (no site-packages, so no psutil: host metrics come from /proc), like a
node that has nothing but python3.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from factoryctl.transport.bundle import agent_zipapp


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (after a 3 s warm-up)")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--bare", action="store_true", help="run the agent with -I -S (no psutil)")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    with tempfile.TemporaryDirectory() as state:
        argv = [sys.executable, *(["-I", "-S"] if args.bare else []), str(agent_zipapp()), "--node", "bench"]
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
        proc.stdin.write(json.dumps({"id": 1, "op": "stream", "interval_s": args.interval}) + "\n")
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
    result = {
        "gpus": args.gpus,
        "interval_s": args.interval,
        "measured_s": round(t1 - t0, 1),
        "samples": n1 - n0,
        "cpu_pct_of_one_core": round(100.0 * busy / (t1 - t0), 3),
        "rss_peak_mib": round(rss_peak / 2**20, 1),
        "python": sys.version.split()[0],
        "bare": args.bare,
    }
    print(json.dumps(result, indent=2))
    ok = result["cpu_pct_of_one_core"] < 1.0 and result["rss_peak_mib"] < 40
    print("within budget (< 1% of a core, < 40 MiB)" if ok else "OVER BUDGET", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
