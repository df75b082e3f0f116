"""A reading no GPU can produce is unknown where it enters the model, so one node's 1e308 W fails nothing else.

The security review's agent reported `"power_w": 1e308` (finite, so it passed the old number check): `nodes` then
failed for the whole fleet (`OverflowError: cannot convert float infinity to integer` in the node's power sum) and
the controller dropped the node's whole sample. Each measured field has bounds (`_PLAUSIBLE`); outside them the value
is None with the reason `invalid`, and the node's sums never raise whatever a sample built in code holds.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import run_cli_text

from factoryctl.model.telemetry import (
    INVALID,
    MAX_ENERGY_J,
    MAX_MEMORY_MIB,
    MAX_POWER_W,
    MAX_TEMPERATURE_C,
    GpuSample,
    NodeSample,
    sum_in_units,
)

T0 = 1_700_000_000.0


def wire_gpu(**values: Any) -> dict[str, Any]:
    return {"index": 0, "name": "H100", "power_w": 300.0, "temperature_c": 50, **values}


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("power_w", 1e308),
        ("power_w", -1e308),  # nvidia-smi printing power.draw -1e308 through the bridge
        ("power_w", MAX_POWER_W + 1),
        ("power_w", -1),
        ("power_limit_min_w", 1e300),
        ("power_limit_w", 10**30),
        ("energy_j", 10**25),
        ("energy_j", 1e308),
        ("memory_total_mib", int("9" * 30)),
        ("memory_used_mib", -5),
        ("temperature_c", -99999999999999999999),
        ("temperature_c", MAX_TEMPERATURE_C + 1),
        ("temperature_c", -274),
        ("temperature_slowdown_c", 1e6),
        ("utilization_pct", 101),
        ("utilization_pct", -1),
        ("sm_clock_mhz", 1e9),
    ],
)
def test_a_reading_no_gpu_can_produce_is_unknown_and_the_others_are_kept(key: str, bad: float) -> None:
    others = {"utilization_pct": 40} if key != "utilization_pct" else {"sm_clock_mhz": 1980}
    gpu = GpuSample.from_json("n1", wire_gpu(**{key: bad, **others}))
    assert getattr(gpu, key) is None
    assert gpu.null_reasons == {key: INVALID}
    sent = {k: v for k, v in {**wire_gpu(), **others}.items() if k not in (key, "index", "name")}
    assert {k: getattr(gpu, k) for k in sent} == sent


def test_readings_at_their_bounds_and_real_ones_pass_unchanged() -> None:
    real = {"power_w": 712.25, "power_limit_max_w": 1400, "temperature_c": -40, "utilization_pct": 100}
    edges = {"energy_j": MAX_ENERGY_J, "memory_total_mib": MAX_MEMORY_MIB, "temperature_slowdown_c": 0}
    gpu = GpuSample.from_json("n1", wire_gpu(**real, **edges))
    assert {k: getattr(gpu, k) for k in {**real, **edges}} == {**real, **edges}
    assert gpu.null_reasons == {}


def test_counts_and_process_memory_out_of_range_are_unknown() -> None:
    procs = [{"pid": 7, "used_memory_mib": -5}, {"pid": 8, "used_memory_mib": 1e300}, {"pid": 9, "used_memory_mib": 12}]
    gpu = GpuSample.from_json("n1", wire_gpu(ecc_uncorrected=-1, processes=procs))
    assert gpu.ecc_uncorrected is None
    assert gpu.null_reasons == {"ecc_uncorrected": INVALID}
    assert [(p.pid, p.used_memory_mib) for p in gpu.processes] == [(7, None), (8, None), (9, 12)]
    assert GpuSample.from_json("n1", wire_gpu(ecc_uncorrected=2**64)).ecc_uncorrected is None
    assert GpuSample.from_json("n1", wire_gpu(ecc_uncorrected=3)).ecc_uncorrected == 3


def test_the_node_power_of_a_huge_wire_reading_is_the_other_gpus_sum() -> None:
    gpus = (GpuSample.from_json("n1", wire_gpu(power_w=1e308)), GpuSample.from_json("n1", wire_gpu(index=1)))
    sample = NodeSample("n1", T0, gpus=gpus)
    assert sample.power_w == 300.0


@pytest.mark.parametrize("bad", [1e308, -1e308, math.inf, -math.inf, math.nan, 10**400, "x", True])
def test_the_sum_in_units_never_raises_and_leaves_out_what_it_cannot_count(bad: Any) -> None:
    assert sum_in_units([bad, 2.5, None], 1000) == 2.5
    assert sum_in_units([bad], 1000) is None
    built_in_code = NodeSample("n1", T0, gpus=(GpuSample("n1", 0, power_w=bad), GpuSample("n1", 1, power_w=1.5)))
    assert built_in_code.power_w == 1.5
    assert built_in_code.power_limit_w is None


# ---------------------------------------------------------------------------------------------------- end to end

#: A node's `python`: an agent that reports one GPU drawing 1e308 W (as the review's ctlp.py did).
HUGE_POWER_AGENT = """\
import json, os, sys, time
def w(m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
w({"type": "hello", "agent_version": "0.1.0", "protocol": 1, "backend": "nvml", "node": "e1", "python": "3",
   "pid": os.getpid(), "gpus": 1})
gpu = {"index": 0, "uuid": "GPU-1", "name": "H100", "power_w": 1e308, "power_limit_w": 300, "temperature_c": 50,
       "memory_total_mib": int("9" * 30), "energy_j": 1e308}
for line in sys.stdin:
    req = json.loads(line)
    result = {"time": time.time(), "backend": "nvml", "gpus": [gpu], "host": {}}
    if req.get("op") == "sample":
        w({"id": req.get("id"), "ok": True, "result": result})
    elif req.get("op") == "clock":
        w({"id": req.get("id"), "ok": True, "result": {"time": time.time()}})
    else:
        w({"id": req.get("id"), "ok": True, "result": {}})
"""


def test_nodes_lists_the_fleet_when_one_node_reports_1e308_watts(tmp_path: Path) -> None:
    agent = tmp_path / "huge-power-agent"
    agent.write_text(f"#!{sys.executable}\n{HUGE_POWER_AGENT}")
    agent.chmod(0o755)
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  good1: {transport: local, sim: h100-sxm, gpus: 1}\n"
        f"  e1: {{transport: local, python: {agent}}}\n"
    )
    done = run_cli_text("-c", str(config), "nodes", "-o", "json", timeout=60)
    assert done.returncode == 0, done.stderr
    nodes = {n["node"]: n for n in json.loads(done.stdout)["items"]}
    assert nodes["e1"]["power_w"] is None
    assert nodes["e1"]["power_limit_w"] == 300
    assert nodes["good1"]["power_w"] > 0
    gpus = run_cli_text("-c", str(config), "gpus", "e1", "-o", "json", timeout=60)
    assert gpus.returncode == 0, gpus.stderr
    (gpu,) = json.loads(gpus.stdout)["items"]
    assert (gpu["power_w"], gpu["memory_total_mib"], gpu["energy_j"]) == (None, None, None)
    assert gpu["null_reasons"] == {"power_w": INVALID, "memory_total_mib": INVALID, "energy_j": INVALID}
