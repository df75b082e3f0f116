"""Leftovers of session 11's reviews: each a small contradiction or a silent end, now said as it is.

- `-q`'s help said "only results and errors", but warnings stay under -q by design (docs/cli.md).
- A value just past a range printed rounded (`.10g`, `:g`): "between 0.1 and 86400, not 86400" contradicted itself.
- `--curve ''` and `--policy ''` became `.` (pathlib): "it is a directory", where `--trace ''` says it is empty.
- The nvidia-smi bridge ended without a word when a `sample` or `set_power_limit` request met output it could not
  read: the session said only that the agent exited. It now answers with the driver's error and goes on serving
  (against a real sshd and the simulated nvidia-smi, which prints unreadable rows when asked).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire
from sshd_fixture import SshdServer, sshd_factory  # noqa: F401 - the fixture, for the bridge tests

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError
from factoryctl.sim import smi as shim
from factoryctl.sim.state import SimNode
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
CURVE = (
    "gpu,max_power_limit_w,workload,batch_size,power_limit_w,pl_frac,throughput_rel,avg_power_w,power_rel\n"
    "TGPU,400,bench/toy,32,100,0.25,0.30,105.0,0.35\n"
    "TGPU,400,bench/toy,32,400,1.0,1.0,300.0,1.0\n"
)
PRICES = "timestamp_utc,price_per_mwh\n" + "".join(f"2023-11-15T{h:02d}:00:00Z,{60 + 3 * h}\n" for h in range(24))


# ------------------------------------------------------------------------------------------------ -q's help


def test_the_quiet_help_says_warnings_stay(cli: Any) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    said = " ".join(result.stdout.split())  # the help is wrapped to the terminal's width
    assert "-q, --quiet Print only results, warnings and errors: no notes, progress or summaries." in said


# ------------------------------------------------------------------------------------------ exact range errors


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ssh: {connect_timeout_s: 86400.000001}\n", "between 0.1 and 86400, not 86400.000001"),
        ("ssh: {connect_timeout_s: 0.0999999999}\n", "between 0.1 and 86400, not 0.0999999999"),
        ("power: {facility_budget_kw: 10000000.001}\n", "between 0.001 and 10000000, not 10000000.001"),
    ],
)
def test_factory_yaml_range_errors_print_the_value_as_written(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("f.yaml"))
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["nodes", "list", "n1", "--timeout", "86400.01"], "--timeout must be from 0.1 to 86400 seconds (1 day)"),
        (["gpus", "n1", "--watch", "--interval", "0.0999999"], "--interval must be from 0.1 to 86400 seconds (1 day)"),
    ],
)
def test_seconds_options_print_the_value_as_typed(cli: Any, tmp_path: Path, args: list[str], sentence: str) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), *args)
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {sentence}, not {args[-1]}." in result.stderr.splitlines()


def test_the_grace_period_prints_the_value_as_typed(cli: Any) -> None:
    result = cli("sched", "simulate", "--trace", "t.csv", "--nodes", "1", "--grace", "86400.01")
    assert result.exit_code == 2
    assert "factoryctl: --grace must be at most 86,400 seconds (a day), not 86400.01." in result.stderr.splitlines()


# ------------------------------------------------------------------------------------ empty --curve, --policy


def power(*extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", "prices.csv", "--curve", "curves.csv", "--gpu", "tgpu", "--workload",
        "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", "-o", "json", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("option", ["--curve", "--policy"])
def test_an_empty_curve_or_policy_is_a_usage_error_naming_it(cli: Any, isolated_home: Path, option: str) -> None:
    (isolated_home / "curves.csv").write_text(CURVE)
    (isolated_home / "prices.csv").write_text(PRICES)
    result = cli(*power(option, ""))  # the last --curve given wins, as for any option
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"factoryctl: {option} is empty, and it needs a file name.",
        f"hint: give {option} a file name.",
    ]


def test_a_curve_and_a_policy_named_dash_are_files(cli: Any, isolated_home: Path) -> None:
    """They read no stdin: `-` is the file named `-`, as it was."""
    (isolated_home / "-").write_text(CURVE)
    (isolated_home / "prices.csv").write_text(PRICES)
    result = cli(*power("--curve", "-"))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["gpu"] == "TGPU"


# ------------------------------------------------------------------------- the bridge and unreadable output

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


@pytest.fixture
def bridge_to(
    sshd_factory: Callable[..., SshdServer],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[bool], tuple[SmiBridge, Callable[[bool], None]]]]:
    """`bridge_to(garbled)`: a bridge over a real sshd to the simulated nvidia-smi, and how to garble it (or not)."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pools: list[SshPool] = []

    def make(garbled: bool) -> tuple[SmiBridge, Callable[[bool], None]]:
        server = sshd_factory()
        SimNode(tmp_path / "sim", "bare", profile="h100-sxm", gpus=2, factory="lab")
        path = server.bin_dir / "nvidia-smi"

        def set_garbled(on: bool) -> None:
            shim.write_shim(path, "bare", str(tmp_path / "sim"), "lab", garbled=on)

        set_garbled(garbled)
        pool = SshPool(OPTIONS)
        pools.append(pool)
        connection = pool.connect(server.node("bare", server.write_known_hosts(tmp_path / "kh")))
        return SmiBridge("bare", connection, timeout=30), set_garbled

    yield make
    for pool in pools:
        pool.close()


@pytest.mark.sshd
def test_requests_meeting_unreadable_output_are_answered_and_the_bridge_goes_on(bridge_to: Any) -> None:
    bridge, set_garbled = bridge_to(False)
    wire = Wire(bridge)
    try:
        assert wire.read()["type"] == "hello"
        set_garbled(True)
        for rid, request in enumerate(({"op": "sample"}, {"op": "set_power_limit", "watts": 300, "clamp": True}), 1):
            reply = wire.ask(id=rid, **request)
            assert reply["id"] == rid
            assert reply["ok"] is False, reply
            assert reply["error"]["kind"] == "driver"
            assert reply["error"]["message"].startswith("nvidia-smi's output could not be read (expected 15 columns")
            assert "result" not in reply  # the set reads the GPUs first: nothing was changed
        set_garbled(False)
        reply = wire.ask(id=3, op="sample")
        assert reply["ok"] is True, reply
        assert [gpu["index"] for gpu in reply["result"]["gpus"]] == [0, 1]
    finally:
        wire.close()


@pytest.mark.sshd
def test_a_hello_meeting_unreadable_output_says_why(bridge_to: Any) -> None:
    bridge, _ = bridge_to(True)
    requests, replies = bridge.serve()
    try:
        assert replies.readline() == b""  # no hello: the bridge ended, and says why
        assert bridge.error is not None
        assert bridge.error.startswith("nvidia-smi's output could not be read (expected 15 columns, got 1")
    finally:
        requests.close()
        replies.close()
