"""Shell completion asked the way the shells ask it: the completion env var, not a diff of generated scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def complete_bash(words: str, env_extra: dict[str, str] | None = None) -> list[str]:
    parts = words.split(" ")
    env = {
        **os.environ,
        "_FACTORYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_top_level_nouns_are_offered():
    offered = complete_bash("factoryctl ")
    for noun in ("nodes", "gpus", "config", "demo", "init", "sim", "completion"):
        assert noun in offered


def test_subcommands_of_a_noun():
    assert "list" in complete_bash("factoryctl nodes ")
    assert set(complete_bash("factoryctl config ")) >= {"validate", "show", "locate"}
    assert complete_bash("factoryctl sim ") == ["inject"]
    assert set(complete_bash("factoryctl sched ")) >= {"simulate", "explain"}


def test_output_formats_are_offered():
    assert complete_bash("factoryctl gpus -o ") == ["table", "wide", "json", "yaml", "csv"]
    assert complete_bash("factoryctl nodes list --output j") == ["json"]
    assert complete_bash("factoryctl exec all -o w") == ["wide"]
    assert complete_bash("factoryctl gpus -o jsn --no-h") == ["--no-header"]  # a bad -o does not break completion


def test_exec_options_end_where_the_remote_command_begins():
    """`exec all grep -` is grep's option: exec's own (`--fanout`, `-t`, ...) were offered there."""
    assert complete_bash("factoryctl exec all grep -") == []
    assert complete_bash("factoryctl exec all -t 5 uptime --") == []
    assert "--timeout" in complete_bash("factoryctl exec all -")
    assert "--lines" in complete_bash("factoryctl exec all -t 5 -")


def test_node_names_and_groups_from_the_inventory(tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  gpu[01-03]: {}\n  ws: {transport: local}\ngroups:\n  rack-a: gpu[01-02]\n")
    offered = complete_bash("factoryctl gpus ", {"FACTORYCTL_CONFIG": str(config)})
    assert offered == ["all", "@rack-a", "gpu01", "gpu02", "gpu03", "ws"]
    assert complete_bash("factoryctl nodes list gpu0", {"FACTORYCTL_CONFIG": str(config)}) == [
        "gpu01",
        "gpu02",
        "gpu03",
    ]
    nodes_offered = complete_bash("factoryctl nodes gpu0", {"FACTORYCTL_CONFIG": str(config)})
    assert nodes_offered == ["gpu01", "gpu02", "gpu03"]  # `nodes TARGET` is `nodes list TARGET`
    assert {"list", "drain", "all", "ws"} <= set(complete_bash("factoryctl nodes ", {"FACTORYCTL_CONFIG": str(config)}))
    explicit = complete_bash(f"factoryctl --config {config} gpus w")
    assert explicit == ["ws"]


def test_broken_config_offers_nothing_rather_than_crashing(tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text("nodes: [\n")
    assert complete_bash("factoryctl gpus ", {"FACTORYCTL_CONFIG": str(config)}) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shipped_scripts_match_the_command(cli, shell):
    result = cli("completion", shell)
    assert result.exit_code == 0
    assert "_FACTORYCTL_COMPLETE" in result.stdout
    assert (REPO / "completions" / f"factoryctl.{shell}").read_text() == result.stdout


def test_fixed_choices_are_offered():
    kinds = complete_bash("factoryctl events --kind ")
    assert kinds[:3] == ["node_up", "node_degraded", "node_down"]
    assert {"xid", "ecc", "drain", "config_rejected"} <= set(kinds)
    assert complete_bash("factoryctl events --kind node_d") == ["node_degraded", "node_down"]
    assert complete_bash("factoryctl controller run --log-level ") == ["debug", "info", "warning", "error"]
    assert complete_bash("factoryctl controller run --log-level w") == ["warning"]
    assert complete_bash("factoryctl sched simulate --policy easy,") == ["easy,fifo", "easy,sjf", "easy,default"]
    assert complete_bash("factoryctl sched explain --policy e") == ["easy"]  # one policy: no comma list


def test_policy_candidates_are_the_schedulers_policies():
    from factoryctl.cli.sched import POLICY_NAMES
    from factoryctl.scheduler.policy import POLICIES

    assert tuple(POLICIES) == POLICY_NAMES


def test_the_choice_helpers():
    from factoryctl.cli.completion import complete_choice_list, complete_choices

    assert complete_choices(("fifo", "sjf", "easy"))("") == ["fifo", "sjf", "easy"]
    assert complete_choices(("fifo", "sjf", "easy"))("e") == ["easy"]
    policies = complete_choice_list(("fifo", "sjf", "easy", "default"))
    assert policies("") == ["fifo", "sjf", "easy", "default"]
    assert policies("fifo,") == ["fifo,sjf", "fifo,easy", "fifo,default"]
    assert policies("fifo,sjf,e") == ["fifo,sjf,easy"]
    assert policies("x") == []


def test_every_element_of_a_target_completes(tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text(
        "nodes:\n  gpu[01-03]: {gpus: 4}\n  ws: {transport: local, sim: {gpus: 2}}\n  cpu1: {}\n"
        "groups:\n  rack-a: gpu[01-02]\n"
    )
    env = {"FACTORYCTL_CONFIG": str(config)}
    offered = complete_bash("factoryctl gpus gpu01,", env)
    expected = ["all", "@rack-a", "gpu02", "gpu03", "ws", "cpu1"]  # every word but the one already in the list
    assert offered == [f"gpu01,{word}" for word in expected]  # the list typed so far kept in front
    assert complete_bash("factoryctl gpus gpu01,g", env) == ["gpu01,gpu02", "gpu01,gpu03"]
    assert complete_bash("factoryctl nodes drain @rack-a!gpu0", env) == [
        "@rack-a!gpu01",
        "@rack-a!gpu02",
        "@rack-a!gpu03",
    ]
    assert complete_bash("factoryctl gpus gpu01,@r", env) == ["gpu01,@rack-a"]
    assert complete_bash("factoryctl gpus gpu[", env) == ["gpu[01-03]"]
    assert complete_bash("factoryctl gpus ws,gpu[0", env) == ["ws,gpu[01-03]"]
    assert complete_bash("factoryctl gpus gpu01/", env) == ["gpu01/0", "gpu01/1", "gpu01/2", "gpu01/3"]
    assert complete_bash("factoryctl gpus ws/", env) == ["ws/0", "ws/1"]  # a simulated node's own count
    assert complete_bash("factoryctl gpus cpu1/", env) == []  # count unknown: nothing rather than a guess
    assert complete_bash("factoryctl gpus gpu01/0,", env) == ["gpu01/0,1", "gpu01/0,2", "gpu01/0,3"]
    assert complete_bash("factoryctl gpus gpu01/1-2,", env) == ["gpu01/1-2,0", "gpu01/1-2,3"]  # listed: left out
    assert complete_bash("factoryctl gpus gpu01/x,", env) == []  # not a GPU list so far: nothing to add


def test_a_shell_without_a_script_is_one_sentence_naming_the_shells(cli):
    result = cli("completion", "tcsh")
    assert result.exit_code == 2
    assert result.stderr == (
        "factoryctl: there is no completion script for `tcsh`.\n"
        "hint: choose bash, zsh or fish, e.g. `factoryctl completion bash`.\n"
    )
    assert complete_bash("factoryctl completion ") == ["bash", "zsh", "fish"]
