"""A refused or part-failed `power set` says what a user needs to go on: the re-run it hints, and every failed node.

A reviewer followed the lost-GPU hint word for word: `power set 'a[15-16]' --watts 450 --clamp --reason "OPS-9 peak"`
hinted `factoryctl power set a16/0-1,3-7 --watts 450`, which an A100 (100-400 W) refuses without `--clamp` (exit 2),
and the ticket would have been missing from the audit log. And `power set all --watts 450` refused by an A100's
range printed only the range error: the nodes refusing connections were not said. Real agents on the simulated
driver (local transport); the unreachable node is a TCP port nobody listens on.
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest

from factoryctl.config import load_config
from factoryctl.store import open_store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def a100s(cli, tmp_path: Path) -> Path:
    """n[1-2]: A100s of 4 GPUs (100-400 W), GPU 2 lost on n2."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-2]: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 4}}\n"
    )
    assert cli("--config", str(path), "sim", "inject", "n2/2", "--lost").exit_code == 0
    return path


def _hinted(stderr: str) -> list[str]:
    """The commands the lost-GPU hints give: from `e.g. ` to the closing backtick."""
    hints = [line for line in stderr.splitlines() if line.startswith("hint: address")]
    return [hint.split("e.g. `", 1)[1].removesuffix("`.") for hint in hints]


def test_the_lost_gpu_hint_repeats_clamp_reason_and_timeout(cli, a100s: Path) -> None:
    asked = ("power", "set", "n[1-2]", "--watts", "50", "--clamp", "--reason", "OPS-9 peak", "--timeout", "30")
    result = cli("--config", str(a100s), *asked)
    assert result.exit_code == 1, result.stderr
    command = "factoryctl power set n2/0-1,3 --watts 50 --clamp --reason 'OPS-9 peak' --timeout 30"
    assert _hinted(result.stderr) == [command]
    followed = cli("--config", str(a100s), *shlex.split(command)[1:])
    assert followed.exit_code == 0, followed.stderr
    store = open_store(load_config(a100s).store_path)
    try:
        entries = [e for e in store.audit(0, ["n2"]) if e.outcome == "confirmed"]
    finally:
        store.close()
    assert sorted((e.gpu, e.after_w, e.clamped, e.reason) for e in entries) == [
        (gpu, 100.0, True, "OPS-9 peak") for gpu in (0, 1, 3)
    ]


def test_the_hint_quotes_a_reason_for_the_shell_and_leaves_out_defaults(cli, a100s: Path) -> None:
    result = cli("--config", str(a100s), "power", "reset", "n2", "-r", "it's the fan; $HOME `x`")
    assert result.exit_code == 1, result.stderr
    command = _hinted(result.stderr)
    assert command == ["factoryctl power reset n2/0-1,3 --reason " + shlex.quote("it's the fan; $HOME `x`")]
    assert shlex.split(command[0])[-2:] == ["--reason", "it's the fan; $HOME `x`"]


def test_the_hint_keeps_every_digit_of_the_watts(cli, a100s: Path) -> None:
    result = cli("--config", str(a100s), "power", "set", "n2", "--watts", "287.1234567")
    assert result.exit_code == 1, result.stderr
    assert _hinted(result.stderr) == ["factoryctl power set n2/0-1,3 --watts 287.1234567"]


def test_a_range_refusal_still_says_the_nodes_that_could_not_be_read(cli, tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  a1: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 2}}\n"
        f"  d1: {{host: 127.0.0.1, port: {_free_port()}}}\n"
    )
    result = cli("--config", str(path), "power", "set", "all", "--watts", "450")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == "factoryctl: 450 W is outside the power-limit range of 2 GPUs on 1 node (a1: 100-400 W); nothing was changed."
    )
    assert lines[1].startswith("hint: pick a value in 100-400 W")
    assert lines[2].startswith("factoryctl: d1: ")
    assert "refused" in lines[2]
    assert result.stdout == ""
