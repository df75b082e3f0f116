"""`exec --lines` whose stdout cannot be written: a full disk or a closed stdout is exit 1 and one sentence.

Its lines are written from the transports' reader threads, and every write error but EPIPE was swallowed there:
`exec all --lines echo hi > /dev/full` ended 0 with nothing said, its output lost, where every other command says
`factoryctl: could not write the output: ...` and ends 1 (docs/cli.md). A real process, on local-transport nodes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_process import CLI_ARGV


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  s[1-3]: {transport: local}\n")
    return str(path)


def exec_lines(factory: str, words: list[str], stdout: int, close_stdout: bool = False) -> tuple[int, str]:
    """`factoryctl exec all -n --lines WORDS` with `stdout` (closed at start when `close_stdout`): (status, stderr)."""
    done = subprocess.run(
        [*CLI_ARGV, "--config", factory, "exec", "all", "-n", "--lines", *words],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr.decode()


def test_a_full_disk_is_exit_1_and_said(factory: str) -> None:
    with open("/dev/full", "wb") as full:
        status, stderr = exec_lines(factory, ["echo", "hi"], full.fileno())
    assert status == 1, stderr
    assert stderr.startswith("factoryctl: could not write the output: No space left on device.\n"), stderr
    assert "unexpected" not in stderr


def test_a_closed_stdout_is_exit_1_and_said(factory: str) -> None:
    status, stderr = exec_lines(factory, ["seq", "100000"], subprocess.DEVNULL, close_stdout=True)
    assert status == 1, stderr
    assert stderr.splitlines()[:2] == [
        "factoryctl: could not write the output: the stream is closed (started with `>&-`).",
        "hint: give it an open stdout (a file, a pipe, or /dev/null to discard the output).",
    ]


def test_a_reader_gone_is_still_a_quiet_141(factory: str) -> None:
    """EPIPE keeps its meaning: `| head -1` ends exec with SIGPIPE's status and says nothing."""
    read, write = os.pipe()
    os.close(read)
    try:
        status, stderr = exec_lines(factory, ["seq", "100000"], write)
    finally:
        os.close(write)
    assert (status, stderr) == (141, "")
