"""A pass's cost with each node's held agent session (the controller's links) vs a session opened per node and pass.

    PYTHONPATH=. python benchmarks/bench_pass_sessions.py N WORKDIR

N local simulated nodes x 8 GPUs, one 8-GPU job each (launched first); then three reconcile passes each way, side by
side, medians: the pass's wall time, its own CPU, and the CPU of the agents it started (reaped children; the held
agents' own answering CPU is not in it, as they still run).
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from factoryctl.config import FactoryConfig, load_config
from factoryctl.jobs.cancel import cancel_jobs
from factoryctl.jobs.node_calls import using_sessions
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.poll import agent_session


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def one_pass(config: FactoryConfig, store: Store) -> tuple[float, float, float]:
    """(wall, the pass's CPU, its reaped agents' CPU) of one `run_tick`."""
    children, own, wall = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF), time.monotonic()
    run_tick(config, store)
    return (
        time.monotonic() - wall,
        _cpu(resource.RUSAGE_SELF) - own,
        _cpu(resource.RUSAGE_CHILDREN) - children,
    )


def measure(config: FactoryConfig, store: Store, held: bool) -> tuple[float, float, float]:
    """The median of three passes, with every node's session held open for them or not."""
    with contextlib.ExitStack() as stack:
        if held:
            sessions = {n: stack.enter_context(agent_session(s, config, 15)) for n, s in config.nodes.items()}
            stack.enter_context(using_sessions(sessions.get))
        return sorted(one_pass(config, store) for _ in range(3))[1]


def main() -> None:
    """Build the fleet, launch its jobs, measure both ways twice, then cancel the jobs."""
    count, root = int(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    path = root / "factory.yaml"
    path.write_text(
        f"name: held\nstate_dir: {root / 'st'}\nnodes:\n"
        f"  h[1-{count}]: {{transport: local, sim: {{profile: h100-sxm, gpus: 8}}}}\n"
    )
    config = load_config(path)
    collect = [sys.executable, "-m", "factoryctl", "--config", str(path), "-q", "telemetry", "collect", "--once"]
    subprocess.run(collect, check=True, stdout=subprocess.DEVNULL)
    store = Store(config.store_path)
    sleeper = (sys.executable, "-c", "import time; time.sleep(300)")
    for i in range(count):
        store.add_job(Job(f"j{i}", JobSpec(8, user="bench", command=sleeper), time.time()))
    launched = run_tick(config, store)
    print("launched", sum(1 for c in launched.changes if c.after.state.active))
    try:
        for held in (False, True, False, True):
            wall, own, agents = measure(config, store, held)
            print(
                json.dumps(
                    {
                        "held": held,
                        "wall_s": round(wall, 3),
                        "pass_cpu_s": round(own, 3),
                        "agents_cpu_s": round(agents, 3),
                    }
                )
            )
    finally:
        cancel_jobs(config, store, store.jobs(), "bench", grace_s=1)
        store.close()


if __name__ == "__main__":
    main()
