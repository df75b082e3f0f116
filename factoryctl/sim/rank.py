"""A simulated job rank: a real process whose GPUs show its load and whose progress slows under a power cap.

    python -m factoryctl.sim.rank --node N [--factory F] [--state-dir D] [--gpus 0,1] [--work-s 60]

It registers its pid on its GPUs (`--gpus`, else `CUDA_VISIBLE_DEVICES`, else all), then does `--work-s` seconds
of full-speed work: every tick it advances by the slowest GPU's work rate under the current cap (the embedded
measured curve), prints its progress, and exits 0 when done. A lost GPU makes it fail (exit 1), as a CUDA error
would; SIGTERM ends it (exit 143). Every `--heartbeat-s` it banks its GPUs' energy in the node's state, so a rank
killed with SIGKILL, which cannot unregister, takes at most that much of its load off the energy counters. With
`FACTORY_CHECKPOINT_DIR` set it saves its progress there and resumes from it when restarted, like a training job
that checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import List, Optional

from factoryctl.sim.state import SimNode

#: How often a rank banks its GPUs' energy in the node's state: a rank killed with SIGKILL (which cannot
#: unregister) takes at most this long of its load with it.
HEARTBEAT_S = 5.0


def _gpus(arg: Optional[str], count: int) -> List[int]:
    text = arg if arg is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
    if text is None or not text.strip():
        return list(range(count))
    return [int(part) for part in text.split(",") if part.strip()]


def _load_progress(checkpoint: Optional[Path]) -> float:
    if checkpoint is None:
        return 0.0
    try:
        return float(json.loads(checkpoint.read_text(encoding="utf-8"))["done_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _save_progress(checkpoint: Optional[Path], done: float) -> None:
    if checkpoint is None:
        return
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint.with_suffix(".tmp")
    tmp.write_text(json.dumps({"done_s": done}), encoding="utf-8")
    os.replace(tmp, checkpoint)


def build_parser() -> argparse.ArgumentParser:
    """The rank's argv."""
    p = argparse.ArgumentParser(prog="factoryctl-sim-rank", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--node", default=os.environ.get("FACTORYCTL_SIM_NODE"), help="the simulated node")
    p.add_argument("--factory", default=os.environ.get("FACTORYCTL_SIM_FACTORY", "default"))
    p.add_argument("--state-dir", default=os.environ.get("FACTORYCTL_SIM_STATE_DIR"))
    p.add_argument("--gpus", help="GPU indexes (default: CUDA_VISIBLE_DEVICES, else all)")
    p.add_argument("--work-s", type=float, default=60.0, help="seconds of work at full speed (default 60)")
    p.add_argument("--load", type=float, default=1.0, help="GPU load while running, 0..1 (default 1)")
    p.add_argument("--memory-mib", type=float, default=20000.0, help="GPU memory used per GPU (default 20000)")
    p.add_argument("--tick-s", type=float, default=0.5, help="progress update interval (default 0.5)")
    p.add_argument(
        "--heartbeat-s",
        type=float,
        default=HEARTBEAT_S,
        help=f"bank the GPUs' energy this often, so a killed rank loses at most this much (default {HEARTBEAT_S:g})",
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the rank; exit status as described in the module docstring."""
    args = build_parser().parse_args(argv)
    if not args.node:
        print("factoryctl-sim-rank: name the simulated node with --node (or FACTORYCTL_SIM_NODE)", file=sys.stderr)
        return 2
    node = SimNode(args.state_dir, args.node, factory=args.factory)
    gpus = _gpus(args.gpus, node.gpu_count)
    ckpt_dir = os.environ.get("FACTORY_CHECKPOINT_DIR")
    checkpoint = Path(ckpt_dir) / "sim-rank.json" if ckpt_dir else None
    done = _load_progress(checkpoint)

    def stop(signum: int, frame: Optional[FrameType]) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    node.register_process(os.getpid(), gpus, load=args.load, used_memory_mib=args.memory_mib, name="sim-rank")
    try:
        last = beat = time.monotonic()
        print(f"sim-rank: {len(gpus)} GPU(s) {gpus} on {args.node}, {done:.1f}/{args.work_s:g} s done", flush=True)
        while done < args.work_s:
            time.sleep(args.tick_s)
            now = time.monotonic()
            readings = [node.reading(i) for i in gpus]
            lost = [r.index for r in readings if r.lost]
            if lost:
                print(f"sim-rank: GPU {lost[0]} fell off the bus; failing", file=sys.stderr, flush=True)
                return 1
            rate = min(r.throughput for r in readings) if readings else 1.0
            done = min(args.work_s, done + rate * (now - last))
            last = now
            if now - beat >= args.heartbeat_s:
                node.heartbeat(os.getpid())
                beat = now
            _save_progress(checkpoint, done)
            print(f"sim-rank: {100.0 * done / args.work_s:.0f}% done at work rate {rate:.2f}", flush=True)
        return 0
    finally:
        node.unregister_process(os.getpid())


if __name__ == "__main__":
    sys.exit(main())
