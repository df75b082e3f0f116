"""A lost GPU refuses its node; the hint's command for the node's other GPUs is quoted for the shell when it must be.

A reviewer saw the hint `factoryctl power set n[44-47]/0-2,4-7 --watts 640` for 4 nodes whose GPU 3 is lost: zsh
refuses it, `[...]` being a glob there. Real agents on the simulated driver (local transport), the GPUs lost
with `factoryctl sim inject --lost`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def lost(cli, tmp_path: Path) -> Path:
    """n[1-3] with 4 GPUs: GPU 1 lost on n1 and n2, GPU 2 on n3."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 4}}\n"
    )
    assert cli("--config", str(path), "sim", "inject", "n[1-2]/1", "--lost").exit_code == 0
    assert cli("--config", str(path), "sim", "inject", "n3/2", "--lost").exit_code == 0
    return path


def test_a_folded_target_is_quoted_and_a_plain_one_is_not(cli, lost: Path) -> None:
    result = cli("--config", str(lost), "power", "set", "all", "--watts", "500")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "factoryctl: n[1-2] (2): GPU 1 is lost; nothing was changed",
        "factoryctl: n3: GPU 2 is lost; nothing was changed",
        "hint: address the node's other GPUs alone, e.g. `factoryctl power set 'n[1-2]/0,2-3' --watts 500`.",
        "hint: address the node's other GPUs alone, e.g. `factoryctl power set n3/0-1,3 --watts 500`.",
        "factoryctl: no power limit was changed.",
    ]


def test_the_hinted_commands_run_as_a_shell_reads_them(cli, lost: Path) -> None:
    import shlex

    said = cli("--config", str(lost), "power", "reset", "all").stderr
    commands = [line.split("`")[1] for line in said.splitlines() if line.startswith("hint: ")]
    assert commands == ["factoryctl power reset 'n[1-2]/0,2-3'", "factoryctl power reset n3/0-1,3"]
    for command in commands:
        result = cli("--config", str(lost), *shlex.split(command)[1:])
        assert result.exit_code == 0, result.stderr
