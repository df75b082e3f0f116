"""A command started with stdout or stderr closed (`>&-`, `2>&-`, as cron and daemons may start it).

Python sets such a stream to None, and the first write or `isatty()` crashed: with stderr closed a listing printed
nothing and exited 1; with stdout closed the error was "unexpected error: AttributeError". A closed stderr now
gets /dev/null (stdout still carries the output); a closed stdout is an output failure said on stderr (exit 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"


def run_closed(tmp_path: Path, fd: int) -> subprocess.CompletedProcess[str]:
    factory = tmp_path / "factory.yaml"
    factory.write_text(FACTORY)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "nodes", "-o", "csv"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.run(argv, env=env, text=True, timeout=120, preexec_fn=lambda: os.close(fd), **pipes)


def test_a_closed_stderr_still_gives_the_listing(tmp_path: Path) -> None:
    result = run_closed(tmp_path, 2)
    assert result.returncode == 0
    assert result.stdout.splitlines()[1].startswith("n1,")


def test_a_closed_stdout_is_an_output_failure_in_one_sentence(tmp_path: Path) -> None:
    result = run_closed(tmp_path, 1)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "factoryctl: could not write the output: the stream is closed (started with `>&-`).",
        "hint: give it an open stdout (a file, a pipe, or /dev/null to discard the output).",
    ]
