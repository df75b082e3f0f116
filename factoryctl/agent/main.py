"""The agent's command line (argv exactly as docs/agent-protocol.md) and backend choice.

With `--sim` the simulated driver backs the session and pynvml is never imported; otherwise the bundled (or
installed) pynvml talks to the real driver.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from factoryctl.agent.limits_lock import LimitsLock, real_node_lock_path
from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.ranks import RankStore, jobs_root
from factoryctl.agent.server import AgentServer


def build_parser() -> argparse.ArgumentParser:
    """The agent's argv."""
    p = argparse.ArgumentParser(prog="factoryctl-agent", description="factoryctl node agent (JSON lines on stdio)")
    p.add_argument("--node", required=True, help="this node's inventory name")
    p.add_argument("--factory", default="default", help="the factory's name (keys simulated state)")
    p.add_argument("--sim", metavar="PROFILE", help="use the simulated driver with this GPU profile")
    p.add_argument("--gpus", type=int, help="simulated GPU count (default 8)")
    p.add_argument("--seed", type=int, help="simulated noise and workload seed (default 0)")
    p.add_argument("--unsupported", default=None, help="comma-separated GPU fields the simulated driver withholds")
    p.add_argument("--workload", choices=("synthetic", "idle"), help="simulated background load (default synthetic)")
    p.add_argument("--state-dir", help="directory holding simulated node state")
    p.add_argument(
        "--setters-need-root",
        action="store_true",
        help="the simulated driver refuses power-limit changes unless the agent runs as root, as NVML does",
    )
    return p


#: `python3 agent.pyz smi ...`: the zipapp also carries the simulator's tools, and the job ranks' wrapper.
TOOLS = ("smi", "sim-rank", "rank-run")


FaultInjector = Callable[[str, Optional[List[int]], Optional[int]], Dict[str, Any]]


def _run_tool(name: str, argv: List[str]) -> int:
    if name == "smi":
        from factoryctl.sim.smi import main as smi_main

        return smi_main(argv)
    if name == "rank-run":
        from factoryctl.agent.rank_run import main as rank_run_main

        return rank_run_main(argv)
    from factoryctl.sim.rank import main as rank_main

    return rank_main(argv)


def _simulated_driver(args: argparse.Namespace) -> Tuple[Any, FaultInjector]:
    """The simulated NVML set up from the command line, and its fault injector; ValueError on a bad option."""
    from factoryctl.sim import nvml as sim_nvml

    unsupported = [f for f in (args.unsupported or "").split(",") if f.strip()]
    sim_nvml.configure(
        node=args.node,
        state_dir=args.state_dir,
        factory=args.factory,
        profile=args.sim,
        gpus=args.gpus if args.gpus is not None else 8,
        seed=args.seed if args.seed is not None else 0,
        unsupported=unsupported,
        workload=args.workload or "synthetic",
        setters_need_root=args.setters_need_root,
    )

    def inject(fault: str, gpus: Optional[List[int]], xid: Optional[int]) -> Dict[str, Any]:
        return sim_nvml.sim_node().inject(fault, gpus, xid)

    return sim_nvml, inject


def _limits_lock(args: argparse.Namespace) -> LimitsLock:
    """The lock every agent of this node shares while changing power limits (factoryctl.agent.limits_lock)."""
    if not args.sim:  # found before each change; one it cannot find (no home for this user) is refused then
        return LimitsLock(None, private=True, locate=real_node_lock_path)
    from factoryctl.sim.storage import default_state_dir, limits_lock_path

    state_dir = args.state_dir if args.state_dir is not None else default_state_dir()
    return LimitsLock(limits_lock_path(state_dir, args.factory, args.node), private=False)


def _rank_store(args: argparse.Namespace) -> RankStore:
    """The node's job ranks (factoryctl.agent.ranks): beside the simulated node's state with `--sim`."""
    if not args.sim:
        return RankStore(jobs_root(args.factory, args.node, None))
    from factoryctl.sim.storage import default_state_dir

    state_dir = os.path.abspath(args.state_dir if args.state_dir is not None else default_state_dir())
    sim = {"state_dir": state_dir, "factory": args.factory, "node": args.node}
    return RankStore(jobs_root(args.factory, args.node, state_dir), sim)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the agent until shutdown or EOF (or, with a first argument in TOOLS, that tool)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        return _run_tool(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    inject: Optional[FaultInjector] = None
    if args.sim:
        try:
            lib, inject = _simulated_driver(args)
        except ValueError as exc:
            print(f"factoryctl-agent: {exc}", file=sys.stderr)
            return 2
        backend = "sim"
    else:
        try:
            import pynvml
        except ImportError as exc:  # pragma: no cover - the zipapp bundles it
            print(f"factoryctl-agent: pynvml is not available: {exc}", file=sys.stderr)
            return 1
        lib = pynvml
        backend = "nvml"
    session = NvmlSession(lib, "NVML" if backend == "nvml" else "the simulated driver (state under the state_dir)")
    server = AgentServer(
        args.node, backend, session, sys.stdout, inject=inject, limits_lock=_limits_lock(args), ranks=_rank_store(args)
    )
    try:
        return server.serve(sys.stdin)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
