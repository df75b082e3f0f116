"""`--trace`, `--prices`, `--curve` and `--policy` naming an unreadable file, and an unknown `--policy`, in our words.

An unreadable file was refused by Click before factoryctl read it (`invalid value for '--trace': path 'noread.csv'
is not readable.`, hint `see factoryctl sched simulate --help`), unlike a directory or a missing file (`cannot read
trace adir: Is a directory.`, with a path hint). An unknown scheduling policy's hint had no period and did not
read as `--price-visibility`'s.

The tests run as root here, for whom no file is unreadable: `os.access` and `Path.open` are made to deny the one
file, as they do for a user who may not read it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,3,1\n"
CURVE = "gpu,workload,pl_frac,throughput_rel,power_rel\nx,w,0.5,0.8,0.6\nx,w,1.0,1.0,1.0\n"
PRICES = "timestamp_utc,price_per_mwh\n2023-11-15T00:00:00Z,10\n2023-11-15T01:00:00Z,20\n"
READ_HINT = "check the path and that the file is readable."


@pytest.fixture
def unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file this process may not read (Click asks `os.access`; factoryctl opens it)."""
    path = tmp_path / "noread.csv"
    path.write_text("x\n")
    real_access, real_open = os.access, Path.open

    def access(target: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(target)) == path and mode & os.R_OK:
            return False
        return real_access(target, mode, *args, **kwargs)  # type: ignore[arg-type]

    def open_(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(Path, "open", open_)
    return path


def files(tmp_path: Path) -> dict[str, Path]:
    written = {"trace": TRACE, "curve": CURVE, "prices": PRICES, "policy": "policy: optimize\n"}
    for name, text in written.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in written}


def power_args(given: dict[str, Path]) -> list[str]:
    return [
        "power", "simulate", "--prices", str(given["prices"]), "--curve", str(given["curve"]),
        "--policy", str(given["policy"]), "--gpu", "x", "--workload", "w", "--max-throughput-loss", "0.05",
        "--price-visibility", "day-ahead",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "what", "hint"),
    [
        ("--trace", "trace", "check the path given to --trace."),
        ("--prices", "prices file", READ_HINT),
        ("--curve", "curve file", READ_HINT),
        ("--policy", "policy file", "check the path given to --policy."),
    ],
)
def test_an_unreadable_file_is_said_as_other_file_errors(cli, tmp_path, unreadable, option, what, hint):
    given = files(tmp_path)
    if option == "--trace":
        args = ["sched", "simulate", "--trace", str(unreadable), "--nodes", "2"]
    else:
        args = power_args({**given, option.lstrip("-"): unreadable})
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr == f"factoryctl: cannot read {what} {unreadable}: Permission denied.\nhint: {hint}\n"


def test_price_show_says_an_unreadable_prices_file_as_others(cli, unreadable):
    result = cli("price", "show", "--prices", str(unreadable))
    assert result.exit_code == 2, result.stderr
    assert result.stderr == f"factoryctl: cannot read prices file {unreadable}: Permission denied.\nhint: {READ_HINT}\n"


@pytest.mark.parametrize("command", ["simulate", "explain"])
@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("bogus", "choose from fifo, sjf, easy, default."),
        ("fiffo", "choose from fifo, sjf, easy, default; did you mean fifo?"),
    ],
)
def test_an_unknown_policy_is_refused_as_other_choices(cli, tmp_path, command, name, hint):
    trace = files(tmp_path)["trace"]
    extra = ["--at", "1"] if command == "explain" else []
    result = cli("sched", command, "--trace", str(trace), "--nodes", "2", "--policy", name, *extra)
    assert result.exit_code == 2, result.stderr
    assert result.stderr == f"factoryctl: unknown policy {name!r}.\nhint: {hint}\n"


def test_a_policy_in_capitals_is_still_known(cli, tmp_path):
    trace = files(tmp_path)["trace"]
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "EASY", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [item["policy"] for item in result.json()["items"]] == ["easy"]
