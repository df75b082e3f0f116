"""A compressed trace or prices file: the hint pipes it into the command that was run, and invents no file name.

The hint always named `sched simulate` (or `power simulate`), also for `sched explain --trace s.xz` and `price show
--prices p.gz`, so following it ran another command; and for input that came through stdin (`--trace - < s.gz`) it
said `zcat FILE | ...`, a file the user never named. It now names the command being run, and says to decompress
in the pipe when the input was piped in.
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.app import run
from factoryctl.errors import UsageError
from factoryctl.textfile import decode_utf8

TRACE = b"job_id,submit_time_s,duration_s,num_gpus\nj1,0,100,8\n"
PRICES = b"time,price_per_mwh\n2026-01-01T00:00:00Z,50\n"


def _zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("trace.csv", data)
    return out.getvalue()


@pytest.fixture
def piped(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, list[str]]]:
    """`piped(data, *args)`: `... | factoryctl ARGS` in this process, `data` on a binary stdin; (status, stderr lines)."""

    def invoke(data: bytes, *args: str) -> tuple[int, list[str]]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        code = run(list(args))
        return code, capsys.readouterr().err.splitlines()

    return invoke


@pytest.mark.parametrize(
    ("args", "what", "option"),
    [
        (["sched", "explain", "--nodes", "2", "--at", "0", "--trace"], "trace", "--trace"),
        (["sched", "simulate", "--nodes", "2", "--trace"], "trace", "--trace"),
        (["price", "show", "--prices"], "prices file", "--prices"),
        (["price", "history", "--prices"], "prices file", "--prices"),
    ],
)
def test_a_compressed_file_is_piped_into_the_command_that_was_run(
    cli: Any, tmp_path: Path, args: list[str], what: str, option: str
) -> None:
    path = tmp_path / "in.xz"
    path.write_bytes(lzma.compress(TRACE if what == "trace" else PRICES))
    result = cli(*args, str(path))
    command = " ".join(a for a in args if a.isalpha())
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"factoryctl: {path}: the {what} looks xz-compressed, not UTF-8 text.",
        f"hint: decompress it and pipe it in with {option} -, e.g. `xzcat {path} | factoryctl {command} {option} - ...`.",
    ]


@pytest.mark.parametrize(
    ("data", "tool"),
    [(gzip.compress(TRACE), "zcat"), (lzma.compress(TRACE), "xzcat"), (_zipped(TRACE), "funzip")],
    ids=["gzip", "xz", "zip"],
)
def test_piped_compressed_input_is_decompressed_in_the_pipe_with_no_file_invented(
    piped: Callable[..., tuple[int, list[str]]], data: bytes, tool: str
) -> None:
    code, said = piped(data, "sched", "explain", "--trace", "-", "--nodes", "2", "--at", "0")
    assert code == 2
    assert said[0].startswith("factoryctl: stdin: the trace looks ")
    assert said[1:] == [
        f"hint: decompress it in the pipe, before factoryctl reads it: `... | {tool} | factoryctl sched explain --trace"
        " - ...`."
    ]
    assert "FILE" not in said[1]


def test_piped_compressed_prices_name_their_command(piped: Callable[..., tuple[int, list[str]]]) -> None:
    code, said = piped(gzip.compress(PRICES), "price", "history", "--prices", "-")
    assert code == 2
    assert said[-1] == (
        "hint: decompress it in the pipe, before factoryctl reads it: `... | zcat | factoryctl price history --prices -"
        " ...`."
    )


def test_outside_a_command_the_hint_names_a_command_that_reads_the_file() -> None:
    """A library caller (no CLI command running): the hint still names one that takes the option."""
    with pytest.raises(UsageError) as refused:
        decode_utf8(gzip.compress(TRACE), "stdin", "trace")
    assert refused.value.hint == (
        "decompress it in the pipe, before factoryctl reads it: `... | zcat | factoryctl sched simulate --trace - ...`."
    )
