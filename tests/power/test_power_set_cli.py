"""`power set / reset` across a fleet with a node down: the reachable nodes are set, the failed one is reported.

Real agents on the simulated driver (local transport) plus one node whose SSH port refuses the connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FACTORY = """\
name: lab
nodes:
  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}
  dead: {host: 127.0.0.1, port: 1}
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


def limits(cli, factory: Path) -> list[float]:
    items = cli("--config", str(factory), "gpus", "n[1-2]", "-o", "json").json()["items"]
    return [item["power_limit_w"] for item in items]


@pytest.mark.parametrize("extra", [[], ["--clamp"]])
def test_set_all_sets_the_reachable_nodes_and_reports_the_unreachable_one(cli, factory, extra):
    result = cli("--config", str(factory), "power", "set", "all", "--watts", "300", *extra, "-o", "json")
    assert result.exit_code == 4, result.stderr
    doc = result.json()
    assert [(i["node"], i["gpu"], i["enforced_w"]) for i in doc["items"]] == [
        (n, g, 300.0) for n in ("n1", "n2") for g in (0, 1)
    ]
    assert [(e["node"], e["error"]) for e in doc["errors"]] == [("dead", "refused")]
    assert "factoryctl: dead: " in result.stderr
    assert "no power limit was changed" not in result.stderr
    assert limits(cli, factory) == [300, 300, 300, 300]


def test_set_with_gpus_and_reset_behave_the_same(cli, factory):
    result = cli("--config", str(factory), "power", "set", "all/1", "--watts", "450")
    assert result.exit_code == 4, result.stderr
    assert limits(cli, factory) == [700, 450, 700, 450]
    reset = cli("--config", str(factory), "power", "reset", "all/1")
    assert reset.exit_code == 4, reset.stderr
    assert limits(cli, factory) == [700, 700, 700, 700]


def test_out_of_range_on_a_reachable_gpu_still_changes_nothing(cli, factory):
    result = cli("--config", str(factory), "power", "set", "all", "--watts", "900")
    assert result.exit_code == 2
    assert "900 W is outside the power-limit range of 4 GPUs on 2 nodes (n[1-2]: 200-700 W); nothing was changed." in (
        result.stderr
    )
    assert limits(cli, factory) == [700, 700, 700, 700]


def test_only_unreachable_nodes_say_nothing_changed(cli, factory):
    result = cli("--config", str(factory), "power", "set", "dead", "--watts", "300")
    assert result.exit_code == 4
    assert "no power limit was changed." in result.stderr


@pytest.mark.parametrize("watts", ["nan", "inf", "-inf"])
def test_non_finite_watts_are_a_usage_error_before_any_node_is_contacted(cli, factory, watts):
    result = cli("--config", str(factory), "power", "set", "all", "--watts", watts, "--clamp")
    assert result.exit_code == 2
    assert "--watts must be a finite number of watts" in result.stderr
    assert "dead" not in result.stderr  # no node was contacted
    assert "nodes check" not in result.stderr
    assert limits(cli, factory) == [700, 700, 700, 700]


def test_a_store_that_cannot_record_the_change_refuses_it_before_any_node_is_touched(cli, factory):
    """The audit log is opened first: the limits used to change and then the command failed with no record."""
    from factoryctl.config import load_config

    store_path = load_config(factory).store_path
    store_path.mkdir(parents=True)  # a directory where the database should be
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "400")
    assert result.exit_code == 1
    assert "store" in result.stderr
    assert "Traceback" not in result.stderr
    assert "dead" not in result.stderr  # no node was contacted
    assert limits(cli, factory) == [700, 700, 700, 700]


def test_an_audit_write_that_fails_after_the_change_says_the_limits_changed(factory, tmp_path):
    from factoryctl.power.limits import LimitChange, record_audit
    from factoryctl.store.sqlite import Store, StoreError, open_store

    path = tmp_path / "audit.db"
    open_store(path).close()
    readonly = Store(path, readonly=True)
    try:
        with pytest.raises(StoreError) as raised:
            record_audit(readonly, [LimitChange("n1", 0, 700.0, 400.0, False)], "set")
    finally:
        readonly.close()
    assert raised.value.message.startswith("the power limits of 1 GPU were changed, but the audit log could not")
    assert "factoryctl gpus" in (raised.value.hint or "")


def test_a_lost_gpu_refuses_the_node_and_names_the_gpus_that_can_still_be_set(cli, factory):
    """It said only "GPU 1 ... is lost; nothing was changed", with no way forward but guessing the others."""
    assert cli("--config", str(factory), "sim", "inject", "n1/1", "--lost").exit_code == 0
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", "400")
    assert result.exit_code == 1
    assert "factoryctl: n1: GPU 1 is lost; nothing was changed" in result.stderr.splitlines()
    assert "hint: address the node's other GPUs alone, e.g. `factoryctl power set n1/0 --watts 400`." in result.stderr
    assert cli("--config", str(factory), "power", "set", "n1/0", "--watts", "400").exit_code == 0


def test_gpu_index_ranges_are_written_as_a_target_writes_them():
    """The client writes a lost GPU's other GPUs (the agent's `other_gpus`) for its hint."""
    from factoryctl.model.folding import fold_indexes

    assert fold_indexes([0, 1, 2, 4, 5, 6, 7]) == "0-2,4-7"
    assert fold_indexes([5, 3, 3]) == "3,5"
    assert fold_indexes([]) == ""
