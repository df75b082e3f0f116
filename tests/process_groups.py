"""Process helpers for the exec tests: the real console script in the background, and process-group checks for the
Ctrl-C and SIGTERM tests (is anything of a command, its whole group, still running here?)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from cli_process import CLI_ARGV


def interrupt_exec(
    config: str, node: str, pidfile: Path, sleep_s: int, sig: signal.Signals = signal.SIGINT
) -> tuple[int, str, int]:
    """Run `exec NODE -- sh -c '...; sleep; wc -c'` with an open stdin pipe, send it `sig` (Ctrl-C) once it runs.

    Returns exec's exit status, its stderr and the process group the command ran in (before the Ctrl-C).
    """
    script = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; sleep {sleep_s}; wc -c"
    read_end, write_end = os.pipe()
    try:
        proc = start("--config", config, "exec", node, "--", "sh", "-c", script, stdin=read_end)
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        group = group_of(int(pidfile.read_text()))
        assert running_in_group(group)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        os.close(read_end)
        os.close(write_end)
    return proc.returncode, err.decode(errors="replace"), group


def start(*args: str, stdin: int, ignore_sigint: bool = False) -> subprocess.Popen[bytes]:
    """The real console script with `stdin` as its standard input, running in the background.

    `ignore_sigint`: with SIGINT ignored, as `sh` starts a script's background jobs (`cmd &`).
    """
    return subprocess.Popen(
        [*CLI_ARGV, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def _stat(pid: str) -> tuple[str, int] | None:
    """(state, process group) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def group_of(pid: int) -> int:
    """The process group of a running process."""
    found = _stat(str(pid))
    assert found is not None, f"process {pid} is not running"
    return found[1]


def running_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of group `pgid`."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(entry.name)
            if found is not None and found[1] == pgid and found[0] != "Z":
                alive.append(int(entry.name))
    return alive


def assert_group_gone(pgid: int, within: float = 10.0) -> None:
    """Every process of group `pgid` ends within `within` seconds."""
    deadline = time.monotonic() + within
    while running_in_group(pgid):
        assert time.monotonic() < deadline, f"still running in group {pgid}: {running_in_group(pgid)}"
        time.sleep(0.05)
