"""`power set` refused on a mixed fleet: the refusal counts what is out of range, the hint gives what every GPU takes.

A reviewer set an H100 (200-700 W) and A100 (100-400 W) fleet to 450 W and was told only of `a01/0`'s range, with the
hint `pick a value in 100-400 W`; 150, from that hint, was then refused for h01/0's 200-700 W. Real agents on the
simulated driver (local transport); the ranges that never overlap (no simulated profile has such) on the check itself.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from factoryctl.errors import UsageError
from factoryctl.power.limit_checks import check_range


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  h[01-02]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
        "  a[01-02]: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 2}}\n"
    )
    return path


def _limits(cli, factory: Path) -> list[float]:
    return [g["power_limit_w"] for g in cli("--config", str(factory), "gpus", "-o", "json").json()["items"]]


def test_the_hint_gives_the_range_every_addressed_gpu_takes(cli, mixed: Path) -> None:
    refused = cli("--config", str(mixed), "power", "set", "all", "--watts", "450")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "factoryctl: 450 W is outside the power-limit range of 4 GPUs on 2 nodes (a[01-02]: 100-400 W); nothing was"
        " changed.",
        "hint: pick a value in 200-400 W, which every addressed GPU takes, or pass --clamp to clamp to each GPU's"
        " range.",
    ]
    low = cli("--config", str(mixed), "power", "set", "all", "--watts", "150")
    assert low.exit_code == 2
    assert "outside the power-limit range of 4 GPUs on 2 nodes (h[01-02]: 200-700 W)" in low.stderr
    assert "hint: pick a value in 200-400 W, which every addressed GPU takes" in low.stderr
    assert _limits(cli, mixed) == [700, 700, 700, 700, 400, 400, 400, 400]
    taken = cli("--config", str(mixed), "power", "set", "all", "--watts", "300", "-o", "json")  # from the hint
    assert taken.exit_code == 0, taken.stderr
    assert _limits(cli, mixed) == [300] * 8


def test_one_gpu_out_of_range_is_named_with_its_own_range(cli, mixed: Path) -> None:
    refused = cli("--config", str(mixed), "power", "set", "a01/0", "--watts", "450")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "factoryctl: 450 W is outside a01/0's power-limit range of 100-400 W; nothing was changed.",
        "hint: pick a value in 100-400 W, or pass --clamp to clamp to each GPU's range.",
    ]


def _node(name: str, low: float, high: float, gpus: int = 2) -> SimpleNamespace:
    return SimpleNamespace(
        node=name,
        gpus=[SimpleNamespace(index=i, power_limit_min_w=low, power_limit_max_w=high) for i in range(gpus)],
    )


def test_ranges_that_do_not_overlap_are_said_with_the_way_out() -> None:
    samples = [_node("big1", 500, 1000), _node("big2", 500, 1000), _node("small1", 100, 300)]
    with pytest.raises(UsageError) as refused:
        check_range(samples, None, 400)  # type: ignore[arg-type]
    assert refused.value.message == (
        "400 W is outside the power-limit range of 6 GPUs on 3 nodes (big[1-2]: 500-1000 W; small1: 100-300 W);"
        " nothing was changed."
    )
    assert refused.value.hint == (
        "no value suits every addressed GPU (big[1-2]: 500-1000 W; small1: 100-300 W): set each group on its own, or"
        " pass --clamp to clamp to each GPU's range."
    )
