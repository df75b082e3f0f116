"""A minimal stand-in for the node agent (protocol 1), so collector tests run without the real agent or NVML.

`python fake_agent.py --node N [--gpus G] [--stall-after K] [--garbage-after K] [--sample-age S] [--clock-offset S]
[--no-clock] [--ops-log FILE]`: says hello, answers sample, stream, stop, clock and shutdown; after K streamed
samples it goes silent (a stalled node) or writes garbage. Its samples are stamped `--sample-age` s old (as a
controller reading them late sees them) on a clock `--clock-offset` s off; `--no-clock` answers `clock` as an agent
older than it; `--ops-log` appends each request's op to FILE.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

lock = threading.Lock()


def send(message: dict) -> None:
    with lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def node_sample(gpus: int, count: int, time_s: float) -> dict:
    return {
        "time": time_s,
        "backend": "sim",
        "gpus": [
            {
                "index": i,
                "uuid": f"GPU-fake-{i}",
                "name": "Fake H100",
                "power_w": 100.0 + i + count % 7,
                "power_limit_w": 700.0,
                "utilization_pct": 50.0,
                "temperature_c": 40.0 + i,
                "energy_j": 1000.0 + count,
                "throttle_reasons": [],
                "null_reasons": {},
            }
            for i in range(gpus)
        ],
        "host": {"cpu_pct": 1.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--stall-after", type=int, default=-1)
    parser.add_argument("--garbage-after", type=int, default=-1)
    parser.add_argument("--sample-age", type=float, default=0.0)
    parser.add_argument("--clock-offset", type=float, default=0.0)
    parser.add_argument("--no-clock", action="store_true")
    parser.add_argument("--ops-log")
    args = parser.parse_args()
    send(
        {
            "type": "hello",
            "agent_version": "fake",
            "protocol": 1,
            "backend": "sim",
            "node": args.node,
            "gpus": args.gpus,
        }
    )
    streams: dict[int, threading.Event] = {}

    def now() -> float:
        return time.time() + args.clock_offset

    def stream(request_id: int, interval: float, stop: threading.Event) -> None:
        count = 0
        while not stop.wait(interval):
            count += 1
            if count == args.stall_after:
                return
            if count == args.garbage_after:
                with lock:
                    sys.stdout.write("Segmentation fault (core dumped)\n")
                    sys.stdout.flush()
                return
            sample = node_sample(args.gpus, count, now() - args.sample_age)
            send({"id": request_id, "type": "sample", "result": sample})

    for line in sys.stdin:
        request = json.loads(line)
        op, rid = request.get("op"), request.get("id")
        if args.ops_log:
            with open(args.ops_log, "a") as log:
                log.write(f"{op}\n")
        if op == "sample":
            send({"id": rid, "ok": True, "result": node_sample(args.gpus, 0, now())})
        elif op == "clock" and not args.no_clock:
            send({"id": rid, "ok": True, "result": {"time": now()}})
        elif op == "stream":
            stop = streams[rid] = threading.Event()
            send({"id": rid, "ok": True, "result": {"streaming": True}})
            threading.Thread(target=stream, args=(rid, float(request["interval_s"]), stop), daemon=True).start()
        elif op == "stop":
            streams.get(request.get("stream"), threading.Event()).set()
            send({"id": rid, "ok": True, "result": {"stopped": True}})
        elif op == "shutdown":
            send({"id": rid, "ok": True, "result": {"bye": True}})
            return
        else:
            send({"id": rid, "ok": False, "error": {"kind": "usage", "message": f"unknown op {op}"}})


if __name__ == "__main__":
    main()
