"""Inputs a fuzzer found (session 23) that crashed a parser or took it minutes, each now a usage or config error.

A CR inside a CSV's first line (a Mac header pasted onto a Unix body) raised the csv module's own error; a header
naming 200,000 columns was checked in quadratic time; `telemetry history` with a `--since` in year 0 in UTC raised
"year 0 is out of range"; a TARGET of hundreds of typos compared each with every node; a NUL in a path of
factory.yaml or an Include of ~/.ssh/config passed `config validate` and raised "embedded null byte" later.

The slow cases run the CLI in its own process with a timeout: at these sizes the old code took minutes (quadratic
in the header's width), the linear one well under a second, so the timeout is a bound, not a measured time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_process import run_cli

from factoryctl import targets
from factoryctl.errors import ExitCode
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

PRICES_HINT = "hint: a prices file has the header timestamp_utc,price_per_mwh and one row per interval"
#: How many columns a wide header has: the quadratic check took 14.6 s for 40,000, so about 6 minutes for this.
WIDE = 200_000
#: What the wide-header runs may take: seconds with a linear check, minutes with the quadratic one.
WIDE_TIMEOUT_S = 90


def _factory(tmp_path: Path, nodes: str, extra: str = "") -> str:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  {nodes}\n{extra}")
    return str(path)


# A CR inside the first line.


def test_a_cr_ending_a_csv_header_before_lf_rows_is_read_as_the_csv_module_reads_it(cli: Any, tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_bytes(b"timestamp_utc,price_per_mwh\r2023-01-01T00:00:00Z,50\n2023-01-01T01:00:00Z,60\n")
    result = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T00:30Z", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert '"price_per_mwh": 50' in result.stdout


@pytest.mark.parametrize("what", ["prices", "curve"])
def test_a_cr_inside_the_first_line_is_the_usual_header_error(cli: Any, tmp_path: Path, what: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a\rb\n")
    good_prices = tmp_path / "p.csv"
    good_prices.write_text("timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,50\n2023-01-01T01:00:00Z,60\n")
    good_curve = tmp_path / "c.csv"
    good_curve.write_text("gpu,workload,pl_frac,throughput_rel,power_rel\nx,w,0.5,0.8,0.5\nx,w,1.0,1.0,1.0\n")
    prices, curve = (bad, good_curve) if what == "prices" else (good_prices, bad)
    simulate = ["power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "x", "--workload", "w"]
    runs = [[*simulate, "--max-throughput-loss", "0.05", "--price-visibility", "realtime"]]
    if what == "prices":
        runs += [["price", "show", "--prices", str(bad), "--at", "2023-01-01T00:30Z"]]
    for argv in runs:
        result = cli(*argv)
        assert result.exit_code == 2, (argv, result.stderr)
        assert f"{bad}:1: the {what} file lacks column(s) " in result.stderr, result.stderr
        assert "its header is 'a'" in result.stderr
        assert "unexpected error" not in result.stderr
    piped = cli("price", "show", "--prices", "-", "--at", "2023-01-01T00:30Z", stdin="a\rb\n")
    assert piped.exit_code == 2, piped.stderr
    assert "stdin:1: the prices file lacks column(s) timestamp_utc, price_per_mwh; its header is 'a'." in piped.stderr


def test_a_first_line_the_csv_module_cannot_read_is_refused_at_line_1(cli: Any, tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text("timestamp_utc,price_per_mwh," + "x" * 200_000 + "\n2023-01-01T00:00:00Z,50\n")
    result = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T00:30Z")
    assert result.exit_code == 2, result.stderr
    assert f"{prices}:1: cannot read this line as CSV (field larger than field limit" in result.stderr
    assert PRICES_HINT in result.stderr


# Wide headers, checked in linear time.


def _wide_header(required: str) -> str:
    """WIDE distinct columns, the required ones, then the last wide column again (refused as named twice)."""
    return ",".join(f"c{n}" for n in range(WIDE)) + f",{required},c{WIDE - 1}\n"


def test_a_prices_file_with_a_very_wide_header_is_refused_without_quadratic_work(tmp_path: Path) -> None:
    prices = tmp_path / "wide.csv"
    prices.write_text(_wide_header("timestamp_utc,price_per_mwh") + "2023-01-01T00:00:00Z,50\n")
    result = run_cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T00:30Z", timeout=WIDE_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert f"{prices}:1: the prices file's header names column c{WIDE - 1} twice".encode() in result.stderr


def test_a_trace_with_a_very_wide_header_is_refused_without_quadratic_work(tmp_path: Path) -> None:
    trace = tmp_path / "wide.csv"
    trace.write_text(_wide_header("job_id,submit_time_s,duration_s,num_gpus") + ",".join(["1"] * (WIDE + 5)) + "\n")
    result = run_cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", timeout=WIDE_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert f"{trace}:1: the header names column c{WIDE - 1} twice".encode() in result.stderr


# Times outside the years 1-9999 in UTC.


@pytest.fixture
def stored(tmp_path: Path) -> str:
    config = _factory(tmp_path, "n1: {transport: local, sim: h100-sxm, gpus: 1}")
    store = Store(tmp_path / "state" / "factory.db")
    store.write([NodeSample("n1", 1_790_000_000.0, gpus=(GpuSample("n1", 0, power_w=100.0),))])
    store.close()
    return config


@pytest.mark.parametrize("command", [["export"], ["history", "n1"], ["energy"]])
@pytest.mark.parametrize(
    ("window", "written"),
    [
        (("0001-01-01T00:00:00+14:00", "0001-01-02T00:00Z"), "from 0000-12-31T10:00:00.000Z until 0001-01-02"),
        (("9999-12-31T00:00Z", "9999-12-31T23:59-14:00"), "from 9999-12-31T00:00:00.000Z until +10000-01-01T13:59"),
    ],
)
def test_iso_times_past_the_years_of_datetime_in_utc_are_windows_like_any(
    cli: Any, stored: str, command: list[str], window: tuple[str, str], written: str
) -> None:
    """`events` and `price` took them; the note of an empty window raised "year 0 is out of range" (or 10000)."""
    result = cli("--config", stored, "telemetry", *command, "--since", window[0], "--until", window[1])
    assert result.exit_code == 0, result.stderr
    assert written in result.stderr, result.stderr
    assert "unexpected error" not in result.stderr


# Did-you-mean for many typos.


def test_a_target_of_many_typos_suggests_for_the_first_few_only(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _factory(tmp_path, "gpu[0001-2000]: {transport: local, sim: h100-sxm, gpus: 1}")
    calls: dict[str, int] = {"key": 0, "closest": 0}
    real_key, real_closest = targets._number_key, targets._closest

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls[name] += 1
            return real(*args)

        return call

    monkeypatch.setattr(targets, "_number_key", counted("key", real_key))
    monkeypatch.setattr(targets, "_closest", counted("closest", real_closest))
    typos = [f"gpu{n:04d}a" for n in range(1, 501)]
    result = cli("--config", config, "gpus", ",".join(typos))
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "`gpu0001a`, `gpu0002a`" in result.stderr
    assert "`gpu0500a` match no node in the inventory." in result.stderr
    assert calls["closest"] == targets.MAX_SUGGESTED_TERMS  # was once per typo, each against 2,001 names
    assert calls["key"] <= 2_001 + targets.MAX_SUGGESTED_TERMS  # was 2,001 per typo: a million calls
    suggested = [f"`gpu{n:04d}`" for n in range(1, targets.MAX_SUGGESTED_TERMS + 1)]
    assert f"hint: did you mean {', '.join(suggested)}? (`factoryctl nodes list` shows them)" in result.stderr


def test_one_typo_keeps_its_message(cli: Any, tmp_path: Path) -> None:
    config = _factory(tmp_path, "gpu[01-16]: {transport: local, sim: h100-sxm, gpus: 1}")
    result = cli("--config", config, "gpus", "gpu3,gpu17")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr == (
        "factoryctl: `gpu3`, `gpu17` match no node in the inventory.\n"
        "hint: did you mean `gpu03`, `gpu16`? (`factoryctl nodes list` shows them)\n"
    )


# NUL in paths.


@pytest.mark.parametrize(
    ("yaml", "key", "line"),
    [
        ('state_dir: "a\\0b"\n', "state_dir", 5),
        ('ssh: {known_hosts: "kh\\0"}\n', "ssh.known_hosts", 5),
        ('ssh: {identity_file: "id\\0"}\n', "ssh.identity_file", 5),
        ('ssh: {python: "python3\\0"}\n', "ssh.python", 5),
        ('power: {price_source: csv, prices: "p\\0.csv"}\n', "power.prices", 5),
    ],
)
def test_a_nul_in_a_path_of_factory_yaml_is_a_config_error_at_load(
    cli: Any, tmp_path: Path, yaml: str, key: str, line: int
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nnodes:\n  n1: {{transport: local, sim: h100-sxm, gpus: 1}}\n\n{yaml}")
    for argv in (["config", "validate"], ["controller", "status"], ["gpus", "n1"]):
        result = cli("--config", str(config), *argv)
        assert result.exit_code == ExitCode.CONFIG, (argv, result.stderr)
        assert f"{config}:{line}:" in result.stderr
        assert f"`{key}`: must not contain a NUL character." in result.stderr


@pytest.mark.parametrize("field", ["identity_file", "python"])
def test_a_nul_in_a_node_path_is_a_config_error_at_load(cli: Any, tmp_path: Path, field: str) -> None:
    config = _factory(tmp_path, f'n1: {{host: 127.0.0.1, {field}: "x\\0"}}')
    result = cli("--config", config, "config", "validate")
    assert result.exit_code == ExitCode.CONFIG, result.stderr
    assert f"{config}:4:" in result.stderr
    assert f"`nodes.n1.{field}`: must not contain a NUL character." in result.stderr


def test_a_nul_in_an_include_of_the_ssh_config_is_a_config_error_naming_the_line(
    cli: Any, tmp_path: Path, isolated_home: Path
) -> None:
    ssh = isolated_home / ".ssh"
    ssh.mkdir()
    (ssh / "config").write_bytes(b"Host *\n  User me\nInclude conf.d\0/*\n")
    (ssh / "config").chmod(0o600)
    config = _factory(tmp_path, "n1: {host: 127.0.0.1, port: 1}")
    result = cli("--config", config, "gpus", "n1")
    assert result.exit_code == ExitCode.CONFIG, result.stderr
    assert (
        f"{ssh / 'config'}, line 3: cannot read SSH config: Include 'conf.d\\x00/*': a file name cannot contain a NUL"
        " character." in result.stderr
    )
    assert "ValueError" not in result.stderr
