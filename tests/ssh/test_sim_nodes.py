"""Simulated nodes behind a real sshd, through the whole CLI: the real agent zipapp is shipped and started."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

GPU_FIELDS = {
    "node", "index", "uuid", "name", "utilization_pct", "memory_used_mib", "memory_total_mib", "power_w",
    "power_limit_w", "power_limit_min_w", "power_limit_max_w", "power_limit_default_w", "energy_j", "temperature_c",
    "temperature_slowdown_c", "sm_clock_mhz", "throttle_reasons", "ecc_uncorrected", "processes", "null_reasons",
}  # fmt: skip


@pytest.fixture
def sim_factory(tmp_path, sshd, known_hosts):
    nodes = f"  sim[1-3]: {{host: 127.0.0.1, port: {sshd.port}, sim: h100-sxm, gpus: 2}}\n"
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, nodes)


def test_gpus_json_over_ssh_has_every_field(cli, sim_factory):
    r = cli("--config", sim_factory, "gpus", "all", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["errors"] == []
    assert [(g["node"], g["index"]) for g in doc["items"]] == [(f"sim{n}", i) for n in (1, 2, 3) for i in (0, 1)]
    for gpu in doc["items"]:
        assert set(gpu) >= GPU_FIELDS, GPU_FIELDS - set(gpu)
        assert gpu["power_w"] > 0
    assert len({g["uuid"] for g in doc["items"]}) == 6


def test_nodes_list_over_ssh(cli, sim_factory):
    r = cli("--config", sim_factory, "nodes", "list", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    items = r.json()["items"]
    assert [(i["node"], i["state"], i["transport"], i["gpus"]) for i in items] == [
        (f"sim{n}", "up", "ssh", 2) for n in (1, 2, 3)
    ]


def _table_rows(text: str) -> list[dict[str, str]]:
    """A table's rows as {column: cell}; columns are two or more spaces apart (a header may contain one)."""
    header, *rows = [re.split(r" {2,}", line.strip()) for line in text.splitlines() if line.strip()]
    assert all(len(row) == len(header) for row in rows), (header, rows)
    return [dict(zip(header, row, strict=True)) for row in rows]


def _gpus(cli: Callable[..., Any], factory: str, form: str) -> Any:
    """`gpus sim1 -o FORM` over SSH, which must succeed."""
    r = cli("--config", factory, "gpus", "sim1", "-o", form, "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    return r


@pytest.mark.parametrize("form", ["table", "wide"])
def test_gpus_tables_over_ssh_show_every_gpu_with_its_values(cli, sim_factory, form):
    items = _gpus(cli, sim_factory, "json").json()["items"]
    rows = _table_rows(_gpus(cli, sim_factory, form).stdout)
    assert [(row["NODE"], row["GPU"]) for row in rows] == [("sim1", "0"), ("sim1", "1")]
    for row, gpu in zip(rows, items, strict=True):
        assert row["NAME"] == gpu["name"]
        assert float(row["POWER W"]) > 0
        assert float(row["CAP W"]) == gpu["power_limit_w"]
        assert row["MEMORY"].endswith(f"/{gpu['memory_total_mib'] / 1024:g} GiB")
        if form == "wide":
            assert row["UUID"] == gpu["uuid"]
            assert row["RANGE W"] == f"{gpu['power_limit_min_w']:g}-{gpu['power_limit_max_w']:g}"


def test_gpus_yaml_over_ssh_is_the_json_document(cli, sim_factory):
    as_json = _gpus(cli, sim_factory, "json").json()
    as_yaml = yaml.safe_load(_gpus(cli, sim_factory, "yaml").stdout)
    assert (as_yaml["schema_version"], as_yaml["errors"]) == (as_json["schema_version"], as_json["errors"]) == (1, [])
    assert [set(gpu) for gpu in as_yaml["items"]] == [set(gpu) for gpu in as_json["items"]]
    steady = ("node", "index", "uuid", "name", "memory_total_mib", "power_limit_w", "power_limit_min_w",
              "power_limit_max_w", "power_limit_default_w", "temperature_slowdown_c", "ecc_uncorrected")  # fmt: skip
    for gpu_yaml, gpu_json in zip(as_yaml["items"], as_json["items"], strict=True):
        assert {key: gpu_yaml[key] for key in steady} == {key: gpu_json[key] for key in steady}
        assert gpu_yaml["power_w"] > 0  # a live reading: only its presence can be compared between two runs


def test_exec_mixes_ssh_and_local_nodes(cli, tmp_path, sshd, known_hosts):
    path = sshd.write_factory(
        tmp_path / "mixed.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n  ws: {transport: local}\n"
    )
    r = cli("--config", path, "exec", "all", "--", "echo", "same")
    assert r.exit_code == 0, r.stderr
    assert "n1,ws (2)" in r.stdout


def test_injected_fault_persists_across_agent_runs_over_ssh(cli, sim_factory):
    r = cli("--config", sim_factory, "sim", "inject", "sim2/1", "--lost", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    r = cli("--config", sim_factory, "gpus", "sim2", "-o", "json", "--timeout", "60")
    gpus = {g["index"]: g for g in r.json()["items"]}
    assert gpus[1]["uuid"] is None
    assert gpus[1]["null_reasons"]["uuid"] == "gpu_lost"
    assert gpus[0]["uuid"] is not None
