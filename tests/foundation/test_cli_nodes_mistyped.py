"""A mistyped `nodes` verb (`nodes lst n01`) is said as one, while `nodes TARGET` keeps listing that TARGET."""

from __future__ import annotations

from pathlib import Path

import pytest

FACTORY = """\
name: mistyped
nodes:
  n[01-03]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}
  lis: {transport: local, sim: {profile: h100-sxm, gpus: 1}}
groups:
  pair: n[01-02]
"""

NO_LST = "factoryctl: there is no `nodes lst` command.\nhint: did you mean `factoryctl nodes list`?\n"


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    return path


@pytest.mark.parametrize("args", [("nodes", "lst", "n01"), ("nodes", "-o", "json", "lst", "n01", "--timeout", "3")])
def test_a_verb_typo_before_a_target_is_no_such_command(cli, factory, args):
    result = cli("--config", str(factory), *args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", NO_LST)


def test_a_verb_typo_before_a_target_needs_no_factory_yaml(cli):
    result = cli("nodes", "lst", "n01")
    assert (result.exit_code, result.stderr) == (2, NO_LST)


def test_a_verb_typo_alone_that_names_no_node_is_no_such_command(cli, factory):
    result = cli("--config", str(factory), "nodes", "lst")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", NO_LST)


def test_a_verb_typo_alone_is_said_before_a_missing_factory_yaml(cli):
    result = cli("nodes", "lst")
    assert (result.exit_code, result.stderr) == (2, NO_LST)


WITH_LST = "name: lst\nnodes:\n  lst: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"


@pytest.mark.parametrize(
    "config", [WITH_LST + "  bad: [\n", WITH_LST + "unknown_key: 1\n", "dir"], ids=["malformed", "invalid", "dir"]
)
def test_a_verb_typo_alone_with_a_factory_yaml_that_fails_to_load_gives_its_config_error(cli, tmp_path, config):
    """It names a node `lst`: the config error says what is wrong, where the verb guess would hide it."""
    path = tmp_path / "factory.yaml"
    if config == "dir":
        path.mkdir()
    else:
        path.write_text(config)
    result = cli("--config", str(path), "nodes", "lst")
    assert (result.exit_code, result.stdout) == (3, "")
    assert "command" not in result.stderr
    assert result.stderr.startswith(f"factoryctl: {path}")


def test_other_verbs_are_suggested_too(cli, factory):
    result = cli("--config", str(factory), "nodes", "drian", "n01", "-r", "fan")
    assert result.exit_code == 2
    assert result.stderr == (
        "factoryctl: there is no `nodes drian` command.\nhint: did you mean `factoryctl nodes drain`?\n"
    )


def test_a_node_named_like_a_verb_typo_is_listed(cli, factory):
    result = cli("--config", str(factory), "nodes", "lis", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["node"] for item in result.json()["items"]] == ["lis"]


def test_a_node_named_like_a_verb_typo_followed_by_a_word_is_a_verb_typo(cli, factory):
    result = cli("--config", str(factory), "nodes", "lis", "n01")
    assert result.exit_code == 2
    assert "there is no `nodes lis` command" in result.stderr


@pytest.mark.parametrize(
    ("target", "nodes"),
    [("n01", ["n01"]), ("all", ["n01", "n02", "n03", "lis"]), ("n[01-02]", ["n01", "n02"]), ("@pair", ["n01", "n02"])],
)
def test_targets_first_still_list(cli, factory, target, nodes):
    result = cli("--config", str(factory), "nodes", target, "--timeout", "5", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["node"] for item in result.json()["items"]] == nodes


def test_an_option_value_is_not_a_second_word(cli, factory):
    result = cli("--config", str(factory), "nodes", "--timeout", "5", "lis", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["node"] for item in result.json()["items"]] == ["lis"]


def test_a_target_after_list_is_judged_as_a_target(cli, factory):
    result = cli("--config", str(factory), "nodes", "list", "lst")
    assert result.exit_code == 2
    assert "`lst` matches no node" in result.stderr
    assert "command" not in result.stderr
    assert "hint: did you mean `lis`?" in result.stderr  # the node it is close to, not `list`, which was typed


def test_two_targets_stay_an_extra_argument(cli, factory):
    result = cli("--config", str(factory), "nodes", "n01", "n02")
    assert result.exit_code == 2
    assert "unexpected extra argument(s) (n02)" in result.stderr


def test_completion_parsing_of_a_verb_typo_does_not_fail():
    from typer.main import get_command

    from factoryctl.cli.app import app

    root = get_command(app)
    ctx = root.make_context("factoryctl", ["nodes"], resilient_parsing=True)
    nodes = root.get_command(ctx, "nodes")
    assert nodes is not None
    nodes.make_context("nodes", ["lst", "n01"], parent=ctx, resilient_parsing=True)
