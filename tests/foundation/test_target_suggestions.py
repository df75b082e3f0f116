"""The "did you mean" of a TARGET naming no node: the same number written with its zero padding comes first.

`gpu3` is string-closer to `gpu13` than to `gpu03`, so difflib alone suggested the wrong node (docs/factory-yaml.md
gives `all!gpu3` for `all!gpu03` as the example of an unknown element).
"""

from __future__ import annotations

import pytest

from factoryctl.errors import UsageError
from factoryctl.targets import resolve_node_names

GPUS = [f"gpu{n:02d}" for n in range(1, 17)]
NODES = [*GPUS, *(f"l{n:02d}" for n in range(1, 21)), "rack2-n007"]


@pytest.mark.parametrize(
    ("target", "meant"),
    [
        ("all!gpu3", "gpu03"),
        ("gpu1", "gpu01"),
        ("l3", "l03"),
        ("gpu003", "gpu03"),
        ("rack02-n7", "rack2-n007"),
    ],
)
def test_the_same_number_padded_otherwise_is_suggested(target: str, meant: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_node_names(target, NODES, {})
    assert (caught.value.hint or "").startswith(f"did you mean `{meant}`?")


@pytest.mark.parametrize(("target", "meant"), [("gpu17", "gpu16"), ("gpux", "gpu16"), ("al", "all")])
def test_other_names_still_get_the_closest_one(target: str, meant: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_node_names(target, NODES, {})
    assert (caught.value.hint or "").startswith(f"did you mean `{meant}`?")


def test_through_the_cli_it_is_a_usage_error_naming_gpu03(cli, tmp_path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  gpu[01-16]: {transport: local, sim: h100-sxm, gpus: 1}\n")
    result = cli("--config", str(config), "nodes", "all!gpu3")
    assert result.exit_code == 2
    assert "hint: did you mean `gpu03`?" in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("@x,@y", "unknown groups `@x`, `@y`."),
        ("gpu98,gpu99,@rak-a", "`gpu98`, `gpu99` match no node in the inventory; unknown group `@rak-a`."),
        ("@rak-a,zz", "`zz` matches no node in the inventory; unknown group `@rak-a`."),
        ("all!@nope", "unknown group `@nope`."),
    ],
)
def test_every_unknown_element_is_named_groups_too(target: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_node_names(target, NODES, {"rack-a": GPUS[:2]})
    assert caught.value.message == message


def test_unknown_groups_without_a_near_name_list_the_groups() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_node_names("@x,@y", NODES, {"rack-a": GPUS[:2]})
    assert caught.value.hint == "groups in factory.yaml: @rack-a."


def test_each_suggestion_is_given_once() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_node_names("gpu4,gpu004,@rak-a", NODES, {"rack-a": GPUS[:2]})
    assert caught.value.hint == (
        "did you mean `gpu04`, `@rack-a`? (`factoryctl nodes list` shows the nodes, `factoryctl config show` the groups)"
    )
