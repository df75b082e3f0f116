"""Ctrl-C while exec reads on after a command that left a job holding its output open (`nohup job &`).

Such a command's output is read for a moment once it exited (transport/held_open.py). A Ctrl-C in that moment
waited it out before exec exited 130; now it ends it at once, and the command's own result (exit 0, its output so
far, the note that its later output is not shown) is still printed. The CLI runs with an hour's grace here: waited
out, it meets the test's own timeout. Local and SSH nodes alike (`fleet`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from background_jobs import alive, marks  # noqa: F401 - marks: the fixture
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture
from reaping import reaped
from waiting import wait_for

from factoryctl.errors import ExitCode
from factoryctl.transport.held_open import HELD_OPEN_NOTE

#: The CLI's entry point with a grace of an hour after a command's exit (cli_process.CLI_ARGV otherwise).
LONG_GRACE_CLI = (
    sys.executable,
    "-c",
    "import factoryctl.transport.held_open as h; h.HELD_GRACE_S = 3600.0; from factoryctl.cli.app import main; main()",
)
#: Starts a `sleep` that keeps stderr open (its pid in $1/jobs), notes its own pid in $1/shells, says `started`.
LEAVES_A_JOB = 'nohup sleep 3600 >/dev/null & echo $! >> "$1/jobs"; echo $$ >> "$1/shells"; echo started'


def _both_exited(shells: Path) -> bool:
    pids = shells.read_text().split() if shells.exists() else []
    return len(pids) == 2 and not any(alive(int(pid)) for pid in pids)


def test_ctrl_c_in_the_grace_ends_exec_at_once_with_the_commands_results(
    fleet: Fleet,  # noqa: F811 - the fixture, as a parameter
    marks: Path,  # noqa: F811 - the fixture, as a parameter
) -> None:
    argv = ["--config", fleet.config, "exec", "all", "-t", "3600", "-n", "-o", "json", "--"]
    proc = subprocess.Popen(
        [*LONG_GRACE_CLI, *argv, "sh", "-c", LEAVES_A_JOB, "x", str(marks)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with reaped(proc):
        wait_for(lambda: _both_exited(marks / "shells"), what="both commands' exit")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # the grace waited out: TimeoutExpired
    assert proc.returncode == ExitCode.INTERRUPTED, err
    doc = json.loads(out)
    assert doc["errors"] == []
    assert [(i["node"], i["exit_code"], i["stdout"]) for i in doc["items"]] == [
        ("n01", 0, "started\n"),
        ("n02", 0, "started\n"),
    ]
    assert f"factoryctl: n[01-02] (2): {HELD_OPEN_NOTE}\n".encode() in err
