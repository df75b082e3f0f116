"""What an operator coming from pdsh / Slurm types at `nodes`, and what factoryctl should answer.

Target suggestions (padding, spaces, case, groups, `/GPUS` where whole nodes are meant), why a node is unhealthy,
and `nodes drain` / `resume` messages. Real agents on the simulated driver (local transport), a real SQLite store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\ngroups:\n  rack-a: gpu[01-04]\n"
        "nodes:\n  gpu[01-08]: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 3}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("gpu[1-4]", "hint: did you mean `gpu[01-04]`? (`factoryctl nodes list` shows them)"),
        ("gpu01 gpu02", "hint: separate nodes with commas, not spaces: `gpu01,gpu02`."),
        ("GPU01", "hint: did you mean `gpu01`? (`factoryctl nodes list` shows them)"),
        ("@racka", "hint: did you mean `@rack-a`? (`factoryctl config show` lists the groups)"),
    ],
)
def test_a_target_that_names_no_node_suggests_the_one_meant(cli: Any, factory: Path, target: str, hint: str) -> None:
    result = cli("--config", str(factory), "nodes", target)
    assert result.exit_code == 2
    assert hint in result.stderr.splitlines()


def test_config_show_lists_the_groups_the_hint_points_to(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "config", "show", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["groups"] == {"rack-a": ["gpu01", "gpu02", "gpu03", "gpu04"]}


@pytest.mark.parametrize("command", [("exec", "gpu01/0,gpu02", "--", "true"), ("nodes", "drain", "gpu01/0,gpu02")])
def test_gpus_given_to_a_whole_node_command_say_so(cli: Any, factory: Path, command: tuple[str, ...]) -> None:
    result = cli("--config", str(factory), *command)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "factoryctl: `gpu01/0,gpu02` picks GPUs, but this command acts on whole nodes: it takes no /GPUS.",
        "hint: write `gpu01,gpu02` for the whole nodes.",
    ]


def test_nodes_says_why_a_node_is_unhealthy(cli: Any, factory: Path) -> None:
    for fault in ("gpu06/3 --lost", "gpu06/1 --ecc"):
        injected = cli("--config", str(factory), "sim", "inject", *fault.split(), "--timeout", "30")
        assert injected.exit_code == 0, injected.stderr
    result = cli("--config", str(factory), "nodes", "gpu[05-06]", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = result.json()["items"]
    assert [(i["healthy"], i["unhealthy_reason"]) for i in items] == [
        (True, None),
        (False, "gpu06/1 uncorrectable ECC 1; gpu06/3 lost"),
    ]
    keys = list(items[1])
    assert keys[keys.index("drained_at") + 1] == "unhealthy_reason"  # appended after the fields before it
    wide = cli("--config", str(factory), "nodes", "gpu06", "-o", "wide")
    header, row = wide.stdout.splitlines()
    assert header.endswith("UNHEALTHY")
    assert row.endswith("gpu06/1 uncorrectable ECC 1; gpu06/3 lost")


def test_drain_folds_names_and_names_the_nodes_with_nothing_to_do(cli: Any, factory: Path) -> None:
    drained = cli("--config", str(factory), "nodes", "drain", "gpu[01-08]", "-r", "maint")
    assert drained.stdout == "drained: gpu[01-08]\n"
    again = cli("--config", str(factory), "nodes", "drain", "gpu[01-03]", "-r", "maint")
    assert again.stdout == "nothing to do: gpu[01-03] are already drained\n"
    assert cli("--config", str(factory), "nodes", "resume", "gpu[01-08]").stdout == "resumed: gpu[01-08]\n"
    idle = cli("--config", str(factory), "nodes", "resume", "gpu01")
    assert idle.stdout == "nothing to do: gpu01 is not drained\n"


def test_an_empty_drain_reason_is_stored_as_none(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "nodes", "drain", "gpu02", "-r", "").exit_code == 0
    listed = cli("--config", str(factory), "nodes", "gpu02", "-o", "json").json()["items"]
    assert [(i["drained"], i["drain_reason"]) for i in listed] == [(True, None)]


def test_draining_again_without_a_reason_keeps_the_first_reason(cli: Any, factory: Path) -> None:
    """Operator B draining a group that holds operator A's node must not wipe A's reason, time or name."""
    assert cli("--config", str(factory), "nodes", "drain", "gpu03", "-r", "fan 4").exit_code == 0
    first = cli("--config", str(factory), "nodes", "gpu03", "-o", "json").json()["items"][0]
    again = cli("--config", str(factory), "nodes", "drain", "gpu[02-03]")
    assert again.exit_code == 0
    assert "gpu03" not in again.stdout.splitlines()[0]  # only gpu02 changed
    after = cli("--config", str(factory), "nodes", "gpu03", "-o", "json").json()["items"][0]
    assert (after["drain_reason"], after["drained_at"]) == ("fan 4", first["drained_at"])
    replaced = cli("--config", str(factory), "nodes", "drain", "gpu03", "-r", "fan 4 and 5")
    assert replaced.stdout == "reason replaced: gpu03\n"  # a new reason is a change
    assert cli("--config", str(factory), "nodes", "gpu03", "-o", "json").json()["items"][0]["drain_reason"] == (
        "fan 4 and 5"
    )


def test_drain_help_does_not_promise_a_running_scheduler(cli: Any) -> None:
    text = cli("nodes", "drain", "--help").stdout
    assert "Keep the scheduler off" not in text
    assert "does not run jobs on a cluster yet" in " ".join(text.split())
