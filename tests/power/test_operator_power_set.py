"""`power set / reset` as an operator meets it: a lost GPU's refusal, and `--watts` written with a unit.

Real agents on the simulated driver (local transport); the GPU is lost with `factoryctl sim inject --lost`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

FACTORY = """\
name: lab
nodes:
  n1: {transport: local, sim: {profile: h100-sxm, gpus: 4, seed: 3}}
"""


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


@pytest.fixture
def lost_gpu(cli: Any, factory: Path) -> Path:
    result = cli("--config", str(factory), "sim", "inject", "n1/2", "--lost", "--timeout", "30")
    assert result.exit_code == 0, result.stderr
    return factory


def test_a_lost_gpu_hints_the_command_for_the_other_gpus(cli: Any, lost_gpu: Path) -> None:
    result = cli("--config", str(lost_gpu), "power", "set", "n1", "--watts", "500")
    assert result.exit_code == 1
    assert "factoryctl: n1: GPU 2 is lost; nothing was changed" in result.stderr.splitlines()
    assert (
        "hint: address the node's other GPUs alone, e.g. `factoryctl power set n1/0-1,3 --watts 500`." in result.stderr
    )
    assert "state_dir" not in result.stderr


def test_nothing_changed_prints_no_table_header(cli: Any, lost_gpu: Path) -> None:
    result = cli("--config", str(lost_gpu), "power", "set", "n1", "--watts", "500")
    assert result.exit_code == 1
    assert result.stdout == ""  # the failure is on stderr; a header over no rows said nothing


def test_reset_with_a_lost_gpu_hints_reset(cli: Any, lost_gpu: Path) -> None:
    result = cli("--config", str(lost_gpu), "power", "reset", "n1")
    assert result.exit_code == 1
    assert "e.g. `factoryctl power reset n1/0-1,3`." in result.stderr


def test_a_change_keeps_its_table_header(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "power", "set", "n1/0", "--watts", "500")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["NODES", "GPUS"]


@pytest.mark.parametrize("watts", ["300W", "0.3kW", "80%"])
def test_watts_with_a_unit_repeats_the_value(cli: Any, factory: Path, watts: str) -> None:
    result = cli("--config", str(factory), "power", "set", "n1", "--watts", watts)
    assert result.exit_code == 2
    assert f"--watts `{watts}` is not a number of watts; nothing was changed." in result.stderr
    assert "hint: give watts as a plain number, e.g. --watts 300" in result.stderr
