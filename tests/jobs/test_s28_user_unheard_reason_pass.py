"""A fresh factory's first job says why it waits: the store has never heard from its node, not that it is down.

`init`, `jobs submit --gpus 8 -- true`, `sched tick` left the job PENDING with `waiting for nodes that are down,
drained or unhealthy`, while `nodes` showed the node up: the pass offers a node the store has never heard from as
down (jobs/cluster.py), and the reason did not tell the two apart. Real store, real CLI, the local transport.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_the_first_job_of_a_fresh_factory_waits_for_a_first_sample(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: fresh\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  ws: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
    )
    submitted = cli("--config", str(config), "jobs", "submit", "--gpus", "8", "--", "true")
    assert submitted.exit_code == 0, submitted.stderr
    assert cli("--config", str(config), "sched", "tick").exit_code == 0
    [job] = json.loads(cli("--config", str(config), "jobs", "list", "-o", "json").stdout)["items"]
    assert job["state"] == "PENDING"
    assert job["reason"] == (
        "waiting for nodes the store has never heard from (ws: `factoryctl telemetry collect --once` or"
        " `factoryctl controller run` samples them): needs 1 node with 8 free GPUs"
    )
    assert cli("--config", str(config), "telemetry", "collect", "--once").exit_code == 0
    assert cli("--config", str(config), "sched", "tick").exit_code == 0  # now it starts
    [job] = json.loads(cli("--config", str(config), "jobs", "list", "--all", "-o", "json").stdout)["items"]
    assert job["state"] in ("RUNNING", "SUCCEEDED"), job["reason"]
