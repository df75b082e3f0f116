"""A power-limit request the driver fails part-way: the GPUs already changed are audited and shown with the error.

When the set fails on GPU 2, GPUs 0 and 1 already hold their new limits; the agent lists them in its error reply
(docs/agent-protocol.md). They must reach the audit log and the command's output next to GPU 2's error, and the
exit code is a failed node's (1, driver). Real agents on the simulated driver (local transport); the node's
`python:` wraps the agent so that the simulated driver fails GPU 2 at the pynvml boundary, the only fake here:
either its set call is refused (the GPU fell off the bus during the call), or it is lost while GPU 1 is being set,
so the agent's first read of it fails. A GPU lost just after its own set changed all the same: it is audited with
its limit after as null. Also: `--watts` refuses Python's underscore digits (`3_00`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.store import open_store

#: Run as `python <agent zipapp> --node ...`: the real agent, its simulated driver failing GPU 2 as MODE says.
FAULTY_AGENT = """\
import sys

sys.path.insert(0, sys.argv[1])  # the agent zipapp, as `python agent.pyz` runs it
from factoryctl.sim import nvml as sim

real_set = sim.nvmlDeviceSetPowerManagementLimit


def failing_set(handle, limit):
    index = sim.nvmlDeviceGetIndex(handle)
    if MODE == "set_refused" and index == 2:
        raise sim.NVMLError(sim.NVML_ERROR_GPU_IS_LOST)
    real_set(handle, limit)
    if MODE == "lost_meanwhile" and index == 1:
        sim.sim_node().inject("lost", [2], None)
    if MODE == "lost_just_after" and index == 1:
        sim.sim_node().inject("lost", [1], None)


sim.nvmlDeviceSetPowerManagementLimit = failing_set
from factoryctl.agent.main import main

sys.exit(main(sys.argv[2:]))
"""


def faulty_factory(tmp_path: Path, mode: str) -> Path:
    """Node `n1` (4 H100s at 700 W) whose simulated driver fails GPU 2 in `mode`; the store under tmp_path."""
    agent = tmp_path / "faulty_agent.py"
    agent.write_text(f"MODE = {mode!r}\n{FAULTY_AGENT}")
    python = tmp_path / "faultypy"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{agent}" "$@"\n')
    python.chmod(0o755)
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n1: {{transport: local, python: {python}, sim: {{profile: h100-sxm, gpus: 4, seed: 3}}}}\n"
    )
    return factory


def audited(cli: Any, factory: Path) -> list[tuple[Any, ...]]:
    entries = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    return sorted((e["node"], e["gpu"], e["action"], e["before_w"], e["after_w"]) for e in entries)


def limits(cli: Any, factory: Path) -> list[Any]:
    return [g["power_limit_w"] for g in cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]]


@pytest.mark.parametrize("mode", ["set_refused", "lost_meanwhile"])
def test_the_gpus_set_before_the_failure_are_audited_and_listed_with_it(cli: Any, tmp_path: Path, mode: str) -> None:
    factory = faulty_factory(tmp_path, mode)
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "300", "-o", "json")
    assert result.exit_code == 1, result.stderr
    doc = result.json()
    assert [(i["node"], i["gpu"], i["before_w"], i["enforced_w"]) for i in doc["items"]] == [
        ("n1", 0, 700.0, 300.0),
        ("n1", 1, 700.0, 300.0),
    ]
    [error] = doc["errors"]
    assert (error["node"], error["error"]) == ("n1", "driver")
    assert error["message"] == "GPU 2 is lost; GPUs 0 and 1 had already changed."  # the node is the entry's `node`
    assert audited(cli, factory) == [("n1", 0, "set", 700.0, 300.0), ("n1", 1, "set", 700.0, 300.0)]


def test_the_table_shows_the_changed_gpus_and_the_error_says_so(cli: Any, tmp_path: Path) -> None:
    factory = faulty_factory(tmp_path, "set_refused")
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "300")
    assert result.exit_code == 1
    rows = [line.split()[:4] for line in result.stdout.splitlines()]
    assert rows == [["NODES", "GPUS", "BEFORE", "W"], ["n1", "0-1", "700", "300"]]
    assert "factoryctl: n1: GPU 2 is lost; GPUs 0 and 1 had already changed." in result.stderr.splitlines()
    assert "no power limit was changed" not in result.stderr
    assert limits(cli, factory)[:2] == [300.0, 300.0]


def test_a_reset_that_fails_part_way_audits_the_gpus_it_reset(cli: Any, tmp_path: Path) -> None:
    factory = faulty_factory(tmp_path, "set_refused")
    assert cli("--config", str(factory), "power", "set", "n1/0-1", "--watts", "300").exit_code == 0
    result = cli("--config", str(factory), "power", "reset", "n1", "-o", "json")
    assert result.exit_code == 1, result.stderr
    doc = result.json()
    assert [(i["gpu"], i["before_w"], i["enforced_w"]) for i in doc["items"]] == [(0, 300.0, 700.0), (1, 300.0, 700.0)]
    assert [e["error"] for e in doc["errors"]] == ["driver"]
    assert audited(cli, factory) == [
        ("n1", 0, "reset", 300.0, 700.0),
        ("n1", 0, "set", 700.0, 300.0),
        ("n1", 1, "reset", 300.0, 700.0),
        ("n1", 1, "set", 700.0, 300.0),
    ]


def test_a_gpu_lost_just_after_its_set_is_audited_with_no_value_after(cli: Any, tmp_path: Path) -> None:
    """Its limit changed but can no longer be read: it used to fail the whole node's answer, with nothing audited."""
    factory = faulty_factory(tmp_path, "lost_just_after")
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "300", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [(i["gpu"], i["enforced_w"]) for i in result.json()["items"]] == [
        (0, 300.0),
        (1, None),
        (2, 300.0),
        (3, 300.0),
    ]
    assert [row[1:] for row in audited(cli, factory)] == [
        (0, "set", 700.0, 300.0),
        (1, "set", 700.0, None),
        (2, "set", 700.0, 300.0),
        (3, "set", 700.0, 300.0),
    ]


def test_the_dashboards_cap_audits_the_gpus_it_changed_before_the_failure(tmp_path: Path) -> None:
    config = load_config(faulty_factory(tmp_path, "set_refused"))
    services = PolledServices(config, "n1")
    try:
        wait_for(lambda: services.snapshot().node("n1").state == "up", timeout=30)
        with pytest.raises(Exception, match="GPUs 0 and 1 had already changed") as raised:
            services.set_power_cap("n1", 300)
        assert getattr(raised.value, "kind", None) == "driver"
    finally:
        services.close()
    store = open_store(config.store_path)
    try:
        rows = [(a.gpu, a.action, a.before_w, a.after_w) for a in store.audit(0, ["n1"])]
    finally:
        store.close()
    assert sorted(rows) == [(0, "set", 700.0, 300.0), (1, "set", 700.0, 300.0)]


@pytest.mark.parametrize("watts", ["3_00", "1_000", "300_", "\uff13\uff10\uff10"])
def test_underscore_digits_in_watts_are_a_usage_error(cli: Any, tmp_path: Path, watts: str) -> None:
    factory = faulty_factory(tmp_path, "set_refused")
    result = cli("--config", str(factory), "power", "set", "n1/0", "--watts", watts)
    assert result.exit_code == 2
    assert f"--watts `{watts}` is not a number of watts; nothing was changed." in result.stderr
    assert "hint: " in result.stderr
    assert result.stdout == ""
