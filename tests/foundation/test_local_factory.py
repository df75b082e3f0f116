"""`nodes`, `gpus`, `sim inject` and `power set` end to end: the real agent zipapp on the simulated driver."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factoryctl.model.telemetry import GPU_FIELDS

FACTORY = """\
name: lab
nodes:
  n[1-2]: {transport: local, rack: a, sim: {profile: h100-sxm, gpus: 4, seed: 3}}
  ws: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 2, unsupported: [ecc_uncorrected]}}
groups:
  pair: n[1-2]
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


def test_gpus_json_has_every_field_and_sane_values(cli, factory):
    result = cli("--config", str(factory), "gpus", "@pair", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["schema_version"] == 1
    assert doc["errors"] == []
    items = doc["items"]
    assert [(i["node"], i["index"]) for i in items] == [(n, g) for n in ("n1", "n2") for g in range(4)]
    for item in items:
        assert tuple(item)[: len(GPU_FIELDS)] == GPU_FIELDS
        assert item["name"] == "NVIDIA H100 80GB HBM3"
        assert item["uuid"].startswith("GPU-")
        assert item["power_limit_min_w"] == 200
        assert item["power_limit_max_w"] == 700
        assert item["power_limit_default_w"] == 700
        assert 20 <= item["power_w"] <= item["power_limit_w"]
        assert item["memory_total_mib"] == 81559 or item["memory_total_mib"] > 80000
        assert item["temperature_slowdown_c"] == 87
        assert item["null_reasons"] == {}
    assert len({i["uuid"] for i in items}) == len(items)


def test_unsupported_field_is_null_with_a_reason(cli, factory):
    items = cli("--config", str(factory), "gpus", "ws", "-o", "json").json()["items"]
    assert len(items) == 2
    for item in items:
        assert item["ecc_uncorrected"] is None
        assert "not supported" in item["null_reasons"]["ecc_uncorrected"].lower()
        assert item["power_limit_max_w"] == 400


def test_gpu_selection_and_yaml_output(cli, factory):
    result = cli("--config", str(factory), "gpus", "n2/1-2", "-o", "yaml")
    assert result.exit_code == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert [(i["node"], i["index"]) for i in doc["items"]] == [("n2", 1), ("n2", 2)]


def test_nodes_list_json(cli, factory):
    doc = cli("--config", str(factory), "nodes", "list", "-o", "json").json()
    rows = {item["node"]: item for item in doc["items"]}
    assert list(rows) == ["n1", "n2", "ws"]
    n1 = rows["n1"]
    assert n1["state"] == "up"
    assert n1["backend"] == "sim"
    assert n1["transport"] == "local"
    assert n1["gpus"] == 4
    assert n1["healthy"] is True
    assert n1["drained"] is False
    assert n1["rack"] == "a"
    assert n1["last_seen"].endswith("Z")
    assert 0 < n1["power_w"] <= n1["power_limit_w"] == 2800


def test_tables_print_a_header_and_one_row_per_gpu(cli, factory):
    result = cli("--config", str(factory), "gpus", "n1")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "GPU", "NAME"]
    assert len(lines) == 5
    no_header = cli("--config", str(factory), "gpus", "n1", "--no-header").stdout.splitlines()
    assert len(no_header) == 4


def test_energy_counter_rises_between_samples(cli, factory):
    first = cli("--config", str(factory), "gpus", "n1/0", "-o", "json").json()["items"][0]["energy_j"]
    second = cli("--config", str(factory), "gpus", "n1/0", "-o", "json").json()["items"][0]["energy_j"]
    assert second > first


def test_power_limit_out_of_range_is_refused_and_changes_nothing(cli, factory):
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "900")
    assert result.exit_code == 2
    assert "outside" in result.stderr
    assert "200-700 W" in result.stderr
    assert "nothing was changed" in result.stderr
    items = cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]
    assert {i["power_limit_w"] for i in items} == {700}


def test_power_limit_set_is_read_back_and_audited(cli, factory):
    result = cli("--config", str(factory), "power", "set", "n1/0-1", "--watts", "450", "-o", "json")
    assert result.exit_code == 0, result.stderr
    changes = result.json()["items"]
    assert [(c["gpu"], c["before_w"], c["enforced_w"], c["clamped"]) for c in changes] == [
        (0, 700, 450, False),
        (1, 700, 450, False),
    ]
    limits = [i["power_limit_w"] for i in cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]]
    assert limits == [450, 450, 700, 700]
    clamped = cli("--config", str(factory), "power", "set", "n1/2", "--watts", "50", "--clamp", "-o", "json")
    assert clamped.json()["items"][0]["enforced_w"] == 200
    assert clamped.json()["items"][0]["clamped"] is True
    assert cli("--config", str(factory), "power", "reset", "n1").exit_code == 0
    limits = [i["power_limit_w"] for i in cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]]
    assert limits == [700, 700, 700, 700]


def test_inject_refuses_a_gpu_the_node_lacks_and_a_bad_xid(cli, factory):
    result = cli("--config", str(factory), "sim", "inject", "all/3", "--ecc")
    assert result.exit_code == 2
    assert "ws has no GPU 3 (it has GPUs 0-1); nothing was injected." in result.stderr
    assert "nodes check" not in result.stderr
    assert cli("--config", str(factory), "sim", "inject", "n1/0", "--xid", "0").exit_code == 2
    items = cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]
    assert [i["ecc_uncorrected"] for i in items] == [0, 0, 0, 0]


def test_power_set_on_a_gpu_one_node_lacks_changes_nothing(cli, factory):
    for verb in (["set", "all/3", "--watts", "300"], ["set", "all/3", "--watts", "300", "--clamp"], ["reset", "ws/5"]):
        result = cli("--config", str(factory), "power", *verb)
        assert result.exit_code == 2, result.stderr
        assert "has no GPU" in result.stderr
        assert "nothing was changed" in result.stderr
    limits = [i["power_limit_w"] for i in cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]]
    assert limits == [700, 700, 700, 700]


def test_gpus_naming_a_gpu_no_node_has_is_a_usage_error(cli, factory):
    result = cli("--config", str(factory), "gpus", "n1/9")
    assert result.exit_code == 2
    assert "no node of `n1` has GPU 9" in result.stderr
    partial = cli("--config", str(factory), "gpus", "all/3", "-o", "json")
    assert partial.exit_code == 0, partial.stderr
    assert [i["node"] for i in partial.json()["items"]] == ["n1", "n2"]


def test_trust_says_it_skipped_local_nodes(cli, factory):
    result = cli("--config", str(factory), "nodes", "trust", "all")
    assert result.exit_code == 0, result.stderr
    assert "skipped n[1-2],ws: the local transport has no host key." in result.stderr
    quiet = cli("--config", str(factory), "-q", "nodes", "trust", "all")  # a cron job that finds nothing mails nothing
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr == ""


def test_inject_lost_gpu_then_reset(cli, factory):
    assert cli("--config", str(factory), "sim", "inject", "n2/3", "--lost").exit_code == 0
    items = cli("--config", str(factory), "gpus", "n2", "-o", "json").json()["items"]
    lost = items[3]
    assert lost["power_w"] is None
    assert set(lost["null_reasons"].values()) == {"gpu_lost"} or "lost" in str(lost["null_reasons"]).lower()
    assert items[0]["power_w"] is not None
    node = {i["node"]: i for i in cli("--config", str(factory), "nodes", "-o", "json").json()["items"]}["n2"]
    assert node["healthy"] is False
    assert cli("--config", str(factory), "sim", "inject", "n2", "--reset").exit_code == 0
    items = cli("--config", str(factory), "gpus", "n2", "-o", "json").json()["items"]
    assert all(i["power_w"] is not None for i in items)


def test_inject_uncorrectable_ecc_marks_node_unhealthy(cli, factory):
    assert cli("--config", str(factory), "sim", "inject", "n1/0", "--ecc").exit_code == 0
    items = cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]
    assert items[0]["ecc_uncorrected"] >= 1
    assert items[1]["ecc_uncorrected"] == 0
    node = {i["node"]: i for i in cli("--config", str(factory), "nodes", "-o", "json").json()["items"]}["n1"]
    assert node["healthy"] is False


def test_demo_headless_prints_the_final_snapshot(cli):
    result = cli("demo", "--headless", "--duration", "1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["errors"] == []
    assert len(doc["items"]) == 64
    assert {i["node"] for i in doc["items"]} == {f"demo0{n}" for n in range(1, 9)}
    assert all(0 < i["power_w"] <= i["power_limit_w"] for i in doc["items"])
    assert any(i["utilization_pct"] > 50 for i in doc["items"])
    assert "\r" not in result.stderr  # the rewritten progress line is for a terminal, not a log file


def test_demo_headless_table_has_the_gpus_columns(cli):
    result = cli("-q", "demo", "--headless", "--duration", "0.5")
    assert result.exit_code == 0, result.stderr
    assert "nodes up" not in result.stderr  # -q: no progress
    first = result.stdout.splitlines()[1]
    assert "/80 GiB" in first, result.stdout


def test_xid_seen_by_a_running_agent_reaches_its_samples(factory):
    """Like NVML, an agent sees XIDs raised after it registered for events (a one-shot poll starts too late)."""
    from factoryctl.config import load_config
    from factoryctl.telemetry.poll import open_transport

    config = load_config(factory)
    transport = open_transport(config.nodes["n1"], config)
    session = transport.start_agent(15)
    try:
        session.request("inject", gpus=[1], fault="xid", xid=13)
        gpus = session.sample().gpus
        assert [(e.xid, e.time is not None) for e in gpus[1].xid_events] == [(13, True)]
        assert gpus[0].xid_events == ()
        assert gpus[1].as_json()["xid_events"][0]["xid"] == 13
    finally:
        session.close()
        transport.close()
