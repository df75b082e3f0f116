"""The demo factory: eight simulated 8 x H100 nodes on this machine, reachable with the local transport.

`factoryctl demo` and the dashboard's tests use it, so a new user sees a working factory with no GPU and no nodes.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.config import FactoryConfig, default_state_dir, parse_config

DEMO_YAML = """\
name: demo
nodes:
  demo[01-04]: {transport: local, rack: a, labels: {pool: train}, sim: {profile: h100-sxm, gpus: 8, seed: 1}}
  demo[05-08]: {transport: local, rack: b, labels: {pool: infer}, sim: {profile: h100-sxm, gpus: 8, seed: 2}}
groups:
  rack-a: demo[01-04]
  rack-b: demo[05-08]
power:
  facility_budget_kw: 40
"""


def demo_config(state_dir: Path | None = None) -> FactoryConfig:
    """The demo factory, its state (simulated GPUs, store) under `state_dir` (default the XDG state dir)."""
    return parse_config(DEMO_YAML, Path("<demo>"), state_dir or default_state_dir("demo"))
