"""TARGET strictness: an empty TARGET, an unknown element or a huge range is a usage error before anything changes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import UsageError
from factoryctl.targets import node_set_size, parse_gpu_target, split_terms

FACTORY = """\
name: targets
nodes:
  n[01-03]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}
groups:
  pair: n[01-02]
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    return path


@pytest.fixture
def lab():
    return parse_config(FACTORY, Path("factory.yaml"))


@pytest.mark.parametrize(
    "args",
    [
        ("power", "set", "", "--watts", "300"),
        ("power", "reset", " "),
        ("nodes", "drain", ""),
        ("nodes", "list", ""),
        ("exec", "", "--", "true"),
        ("gpus", "\t"),
        ("power", "set", "/0", "--watts", "300"),
    ],
)
def test_an_empty_target_is_a_usage_error_not_all(cli, factory, args):
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "TARGET is empty" in result.stderr
    assert "`all`" in result.stderr  # the hint says how to mean every node


def test_omitted_target_still_means_all_for_listings(lab):
    assert [n.name for n in lab.resolve_target(None)] == ["n01", "n02", "n03"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("power", "set", "n01,zz", "--watts", "350"), "`zz`"),
        (("nodes", "drain", "n01,zzz"), "`zzz`"),
        (("exec", "n01,n09", "--", "true"), "`n09`"),
        (("gpus", "n01,x[1-3],@pair"), "`x[1-3]`"),
    ],
)
def test_an_unknown_element_of_a_list_is_a_usage_error(cli, factory, args, named):
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert named in result.stderr
    assert "matches no node" in result.stderr


def test_every_unknown_element_is_named_with_a_suggestion(lab):
    with pytest.raises(UsageError) as caught:
        lab.resolve_target("n01,n1,zz")
    assert caught.value.message.startswith("`n1`, `zz` match no node")
    assert "did you mean `n01`?" in (caught.value.hint or "")


def test_a_typo_after_an_exclusion_does_not_widen_the_set(lab):
    with pytest.raises(UsageError, match="`n1` matches no node"):
        lab.resolve_target("all!n1")
    assert [n.name for n in lab.resolve_target("all!n01")] == ["n02", "n03"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("n[01-99]", ["n01", "n02", "n03"]),  # a range that partly matches is fine
        ("@pair^n[02-03]", ["n01", "n03"]),
        ("n[01-03]&@pair", ["n01", "n02"]),
        ("n01 , n03", ["n01", "n03"]),
        ("@all!n02", ["n01", "n03"]),
    ],
)
def test_operators_apply_left_to_right(lab, target, expected):
    assert [n.name for n in lab.resolve_target(target)] == expected


def test_an_unknown_group_suggests_the_nearest(lab):
    with pytest.raises(UsageError) as caught:
        lab.resolve_target("@piar")
    assert caught.value.hint == "did you mean `@pair`? (`factoryctl config show` lists the groups)"


@pytest.mark.parametrize("target", ["n01,", ",n01", "n01,,n02"])
def test_an_empty_element_is_a_usage_error(lab, target):
    with pytest.raises(UsageError, match="empty element"):
        lab.resolve_target(target)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("gpus", "n01/0-100000000"), "GPU 100000000 is out of range"),
        (("gpus", "n01/0-99999999999"), "at most 64 GPUs"),
        (("gpus", "x[1-10000000]"), "names 10,000,000 nodes"),
        (("power", "set", "n[1-99999999999]", "--watts", "300"), "a node set may name at most 100,000"),
        (("gpus", "n[1-100000]x[1-100000]"), "names 10,000,000,000 nodes"),
    ],
)
def test_huge_ranges_are_refused_at_once(cli, factory, args, fragment):
    started = time.monotonic()
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr
    assert time.monotonic() - started < 5  # not a timing assertion on speed: a hang would take minutes


def test_node_set_size_counts_without_expanding():
    assert node_set_size("n[1-10,20-29/2]") == 15
    assert node_set_size("r[1-4]n[01-16]") == 64
    assert node_set_size("ws") == 1
    assert split_terms("a[1,2]!b,@g") == [("", "a[1,2]"), ("!", "b"), (",", "@g")]


def test_gpus_of_several_nodes_are_written_once(cli, factory):
    with pytest.raises(UsageError, match="more than one `/GPUS`"):
        parse_gpu_target("n04/2,n06/0")
    assert parse_gpu_target("n[01-02]/1") == ("n[01-02]", [1])
    result = cli("--config", str(factory), "gpus", "n01/2,n02/0")
    assert result.exit_code == 2
    assert "n[04,06]/0" in result.stderr


@pytest.mark.parametrize(
    "args",
    [("nodes", "n01", "-o", "json"), ("nodes", "-o", "json", "n01"), ("nodes", "list", "n01", "-o", "json")],
)
def test_nodes_target_lists_those_nodes(cli, factory, args):
    result = cli("--config", str(factory), *args)
    assert result.exit_code == 0, result.stderr
    assert [item["node"] for item in result.json()["items"]] == ["n01"]


def test_nodes_with_a_verb_typo_suggests_the_verb(cli, factory):
    result = cli("--config", str(factory), "nodes", "lsit")
    assert result.exit_code == 2
    assert "did you mean `factoryctl nodes list`?" in result.stderr


def test_nodes_with_an_option_only_list_takes_is_nodes_list(cli, factory):
    result = cli("--config", str(factory), "nodes", "--timeout", "20", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["node"] for item in result.json()["items"]] == ["n01", "n02", "n03"]
