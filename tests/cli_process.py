"""The real `factoryctl` console in its own process, for tests that need real pipes, signals or a process exit.

In-process runs (the `cli` fixture) cannot show what only a process has: a real stdin pipe and its EOF, bytes on a
real stdout, logging's last-resort output, an exit status. Every such test starts the CLI the same way, through its
entry point (`CLI_ARGV`), so the console script on PATH (which may belong to another install) is never what runs.
"""

from __future__ import annotations

import subprocess
import sys

#: `python -c` the CLI's entry point: the argv of `factoryctl` in this interpreter, before its own arguments.
CLI_ARGV = (sys.executable, "-c", "from factoryctl.cli.app import main; main()")


def run_cli(*args: str, stdin: bytes | None = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """`... | factoryctl ARGS`: `stdin` goes through a real pipe (None: /dev/null); output captured as bytes."""
    return subprocess.run(
        [*CLI_ARGV, *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def run_cli_text(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`run_cli` with text in and out (stdout and stderr are pipes, not files)."""
    return subprocess.run([*CLI_ARGV, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
