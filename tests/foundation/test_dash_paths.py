"""`-` is stdin or stdout only when given as `-` itself; a path that is stdout is written as `-` is; empty is refused.

pathlib reads `./-` as `-`, so `--trace ./-` read stdin and `--schedule-out ./-` wrote stdout instead of the file
named `-`, and it reads an empty value as `.`: `--schedule-out ''` said "it is a directory". `--schedule-out
/dev/stdout` was written as `-` only when stdout was a file: into a pipe the CSV and the results table were mixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import run_cli_text

TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\nb,5,20,2\n"
OTHER_TRACE = "job_id,submit_time_s,duration_s,num_gpus\nonly,0,10,1\n"
SCHEDULE_HEADER = "job_id,policy,submit_s,start_s,end_s,allocation"
CURVE = (
    "gpu,max_power_limit_w,workload,batch_size,power_limit_w,pl_frac,throughput_rel,avg_power_w,power_rel\n"
    "TGPU,400,bench/toy,32,100,0.25,0.30,105.0,0.35\n"
    "TGPU,400,bench/toy,32,200,0.5,0.70,168.0,0.56\n"
    "TGPU,400,bench/toy,32,400,1.0,1.0,300.0,1.0\n"
)
PRICES = "timestamp_utc,price_per_mwh\n" + "".join(f"2023-11-15T{h:02d}:00:00Z,{60 + 3 * h}\n" for h in range(24))
OTHER_PRICES = "timestamp_utc,price_per_mwh\n2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,20\n"


def sched(trace: str, *extra: str) -> list[str]:
    return ["sched", "simulate", "--trace", trace, "--nodes", "1", "--policy", "fifo", "-o", "csv", *extra]


def power(prices: str, *extra: str) -> list[str]:
    return [
        "power", "simulate", "--prices", prices, "--curve", "curves.csv", "--gpu", "tgpu", "--workload", "bench/toy",
        "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", "-o", "json", *extra,
    ]  # fmt: skip


@pytest.fixture
def inputs(isolated_home: Path) -> Path:
    (isolated_home / "trace.csv").write_text(TRACE)
    (isolated_home / "curves.csv").write_text(CURVE)
    (isolated_home / "prices.csv").write_text(PRICES)
    return isolated_home


@pytest.mark.parametrize("stdout_path", ["/dev/stdout", "/proc/self/fd/1"])
@pytest.mark.parametrize("command", ["sched", "power"])
def test_a_path_naming_stdout_into_a_pipe_is_written_as_dash(inputs: Path, stdout_path: str, command: str) -> None:
    if not Path(stdout_path).exists():
        pytest.skip(f"no {stdout_path} here")
    args = sched("trace.csv") if command == "sched" else power("prices.csv")
    as_dash = run_cli_text("-q", *args, "--schedule-out", "-")
    as_path = run_cli_text("-q", *args, "--schedule-out", stdout_path)
    assert as_dash.returncode == 0, as_dash.stderr
    assert (as_path.returncode, as_path.stdout) == (0, as_dash.stdout)  # the schedule alone
    assert as_path.stdout.splitlines()[0] in (SCHEDULE_HEADER, "timestamp_utc,price_per_mwh,power_limit_frac")
    assert as_path.stderr.splitlines()[0] == as_dash.stderr.splitlines()[0]  # the results (pass times vary)


def test_a_path_whose_file_is_stdout_is_written_as_dash(inputs: Path) -> None:
    """The file behind stdout, named by its own path: the schedule is not renamed over what stdout wrote."""
    with (inputs / "all.txt").open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "factoryctl", "-q", *sched("trace.csv", "--schedule-out", "all.txt")],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert (inputs / "all.txt").read_text().splitlines()[0] == SCHEDULE_HEADER
    assert done.stderr.startswith("policy,jobs,")


@pytest.mark.parametrize(
    ("args", "option", "stream"),
    [
        (sched("trace.csv", "--schedule-out", ""), "--schedule-out", "stdout"),
        (sched(""), "--trace", "stdin"),
        (["sched", "explain", "--trace", "", "--nodes", "1", "--at", "0"], "--trace", "stdin"),
        (["price", "show", "--prices", ""], "--prices", "stdin"),
        (["price", "history", "--prices", "", "--since", "2023-11-15"], "--prices", "stdin"),
        (power(""), "--prices", "stdin"),
        (power("prices.csv", "--schedule-out", ""), "--schedule-out", "stdout"),
    ],
    ids=["schedule-out", "trace", "explain-trace", "price-show", "price-history", "power-prices", "power-out"],
)
def test_an_empty_file_option_is_a_usage_error_naming_it(
    cli: Any, inputs: Path, args: list[str], option: str, stream: str
) -> None:
    result = cli(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"factoryctl: {option} is empty, and it needs a file name.",
        f"hint: give {option} a file name, or - for {stream}.",
    ]


def test_trace_dot_slash_dash_is_the_file_named_dash_not_stdin(cli: Any, inputs: Path) -> None:
    (inputs / "-").write_text(OTHER_TRACE)
    from_file = cli(*sched("./-"), stdin=TRACE)
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.stdout.splitlines()[1].startswith("fifo,1,")  # the file's one job, not stdin's two
    from_stdin = cli(*sched("-"), stdin=TRACE)
    assert from_stdin.stdout.splitlines()[1].startswith("fifo,2,")


def test_trace_dot_slash_dash_missing_names_the_file(cli: Any, inputs: Path) -> None:
    result = cli(*sched("./-"), stdin=TRACE)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"factoryctl: cannot read trace {inputs / '-'}: No such file or directory."


def test_schedule_out_dot_slash_dash_writes_the_file_named_dash(cli: Any, inputs: Path) -> None:
    result = cli(*sched("trace.csv", "--schedule-out", "./-"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("policy,jobs,")  # the results, and only them, on stdout
    assert SCHEDULE_HEADER not in result.stdout
    assert (inputs / "-").read_text().splitlines()[0] == SCHEDULE_HEADER


@pytest.mark.parametrize("command", [["price", "show", "--at", "2023-11-15T00:30:00Z"], power])
def test_prices_dot_slash_dash_is_the_file_named_dash_not_stdin(cli: Any, inputs: Path, command: Any) -> None:
    (inputs / "-").write_text(OTHER_PRICES)
    args = command("./-") if callable(command) else [*command, "--prices", "./-", "-o", "json"]
    from_file = cli(*args, stdin=PRICES)
    assert from_file.exit_code == 0, from_file.stderr
    os.remove(inputs / "-")
    from_stdin = cli(*[("-" if a == "./-" else a) for a in args], stdin=PRICES)
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert from_file.stdout != from_stdin.stdout  # the file's two prices, not stdin's day


@pytest.mark.parametrize("option", ["--trace", "--schedule-out"])
def test_file_options_still_complete_file_names(option: str) -> None:
    """The options keep their text until a callback (`path_type=str`); the shells still complete files there."""
    line = f"factoryctl sched simulate {option} tr"
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line}
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "_files"


def test_schedule_out_dev_null_with_stdout_there_too_keeps_stderr_quiet(inputs: Path) -> None:
    """`--schedule-out /dev/null > /dev/null` discards both: the results are not moved to stderr, as for stdout."""
    with open(os.devnull, "w") as null:
        done = subprocess.run(
            [sys.executable, "-m", "factoryctl", "-q", *sched("trace.csv", "--schedule-out", os.devnull)],
            stdout=null,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0
    assert done.stderr == ""
