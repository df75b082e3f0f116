"""Summed figures print as the decimals the driver's units add up to, and `telemetry collect` needs no `--once`.

NVML reports milliwatts and millijoules; summed as floats, `nodes -o json` printed `"power_w": 3206.3289999999997`
and `telemetry energy` `0.3396186775000001`, where docs/cli.md promises the full precision of the source.
`telemetry collect` refused to run without `--once`, while its help offered `--once` as an ordinary option.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory

from factoryctl.model.telemetry import GpuSample, NodeSample, exact_product, kwh_from_joules, sum_in_units

#: Eight GPUs' power in watts (whole milliwatts) whose float sum is 3206.3290000000006 (added one by one: Python
#: 3.12's `sum()` compensates the rounding, so the naive sum this replaces is `naive_sum`).
EIGHT_GPUS_W = (210.816, 682.084, 375.127, 189.317, 240.122, 604.71, 588.485, 315.668)


def naive_sum(values: list[float] | tuple[float, ...]) -> float:
    """The floats added one by one, as the code this replaces did (and `sum()` did before Python 3.12)."""
    return functools.reduce(operator.add, values)


def decimals(value: float) -> int:
    """How many digits `value` prints after its point (as json.dumps and csv write it: repr)."""
    return len(repr(value).partition(".")[2])


def test_node_power_is_the_sum_of_its_gpus_milliwatts() -> None:
    assert naive_sum(EIGHT_GPUS_W) != 3206.329  # the float sum this replaces
    gpus = tuple(GpuSample("n1", i, power_w=w, power_limit_w=w + 0.1) for i, w in enumerate(EIGHT_GPUS_W))
    sample = NodeSample("n1", 1.0, gpus=gpus)
    assert repr(sample.power_w) == "3206.329"
    assert repr(sample.power_limit_w) == "3207.129"
    assert NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0),)).power_w is None  # no GPU reports it: unknown, not 0
    assert sum_in_units([None, 1.5, None], 1000) == 1.5


def test_energy_in_kwh_is_the_millijoules_divided_once() -> None:
    joules = [203021.34, 210545.829, 778642.988, 405551.635]  # 1,597,761,792 mJ: 0.44382272 kWh exactly
    assert naive_sum(joules) / 3.6e6 != 0.44382272  # the float sum this replaces
    assert repr(kwh_from_joules(joules)) == "0.44382272"
    assert kwh_from_joules([]) == 0.0


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "n[01-10]: {transport: local, sim: h100-sxm, gpus: 8}")


def test_nodes_json_power_has_the_drivers_resolution(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "nodes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = result.json()["items"]
    assert len(items) == 10
    for item in items:  # a float sum of eight GPUs shows its noise in about 4 nodes in 10
        assert decimals(item["power_w"]) <= 3, item
        assert decimals(item["power_limit_w"]) <= 3, item


def test_collect_takes_one_sweep_with_or_without_once(cli: Any, factory: Path) -> None:
    plain = cli("--config", str(factory), "telemetry", "collect", "n0[1-2]", "-o", "json")
    assert plain.exit_code == 0, plain.stderr
    assert [i["state"] for i in plain.json()["items"]] == ["up", "up"]
    assert "stored 16 GPU samples from 2 of 2 nodes" in plain.stderr
    once = cli("--config", str(factory), "telemetry", "collect", "n03", "--once", "-o", "json")
    assert once.exit_code == 0, once.stderr
    assert decimals(once.json()["items"][0]["power_w"]) <= 3
    assert "collect always takes one sweep" in " ".join(cli("telemetry", "collect", "--help").stdout.split())


def test_energy_cost_is_the_product_of_the_printed_decimals() -> None:
    assert 0.1 * 3 != 0.3  # the float product this replaces (0.30000000000000004)
    assert repr(exact_product(0.1, 3)) == "0.3"
    assert repr(exact_product(0.3396186775, 0.2)) == "0.0679237355"
